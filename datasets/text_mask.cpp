// The text mask from the reference's bitmap, and our own lorem-ipsum rendering with a 5x7 font.
#include "datasets/text_mask.h"

#include <ATen/ATen.h>

#include <map>
#include <sstream>
#include <vector>

#include "datasets/npy.h"
#include "datasets/resample.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

constexpr int kGlyphW = 5, kGlyphH = 7;

// Our own 5x7 glyphs, 7 rows each, '#' = ink.
const std::map<char, std::vector<const char*>>& font() {
  static const std::map<char, std::vector<const char*>> glyphs = {
      {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
      {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},
      {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
      {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
      {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},
      {'b', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}},
      {'c', {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}},
      {'d', {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}},
      {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
      {'f', {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}},
      {'g', {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}},
      {'h', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
      {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},
      {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}},
      {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},
      {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
      {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"}},
      {'n', {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
      {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},
      {'p', {".....", ".....", "####.", "#...#", "####.", "#....", "#...."}},
      {'q', {".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"}},
      {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},
      {'s', {".....", ".....", ".###.", "#....", ".###.", "....#", "####."}},
      {'t', {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}},
      {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},
      {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
      {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},
      {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},
      {'y', {".....", ".....", "#...#", "#...#", ".####", "....#", ".###."}},
      {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},
  };
  return glyphs;
}

const char kLorem[] =
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco "
    "laboris nisi ut aliquip ex ea commodo consequat.";

// Greedy word wrap to lines of at most `cols` characters (long words are split).
std::vector<std::string> wrap(const std::string& text, int64_t cols) {
  std::vector<std::string> lines;
  std::istringstream words(text);
  std::string word, line;
  while (words >> word) {
    while (static_cast<int64_t>(word.size()) > cols) {
      if (!line.empty()) lines.push_back(line), line.clear();
      lines.push_back(word.substr(0, cols));
      word = word.substr(cols);
    }
    if (line.empty()) {
      line = word;
    } else if (static_cast<int64_t>(line.size() + 1 + word.size()) <= cols) {
      line += " " + word;
    } else {
      lines.push_back(line);
      line = word;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

}  // namespace

const char* const* text_mask_glyph(char c) {
  auto it = font().find(c);
  if (it != font().end()) return it->second.data();
  if (c >= 'A' && c <= 'Z') {  // other capitals fall back to their lower-case glyph
    it = font().find(static_cast<char>(c - 'A' + 'a'));
    if (it != font().end()) return it->second.data();
  }
  return nullptr;
}

at::Tensor text_mask_from_bitmap(const at::Tensor& bitmap, int64_t height, int64_t width) {
  if (!bitmap.defined() || bitmap.dim() != 2) throw InputError("text mask bitmap must be 2-d");
  if (height <= 0 || width <= 0) throw UsageError("text mask needs a positive size");
  at::Tensor u8 = bitmap.scalar_type() == at::kByte ? bitmap : bitmap.to(at::kByte);
  if (u8.size(0) != height || u8.size(1) != width) u8 = opencv_resize_cubic_u8(u8, height, width);
  return u8.to(at::kFloat).unsqueeze(0).contiguous();
}

at::Tensor text_mask_from_npy(const std::string& path, int64_t height, int64_t width) {
  const NpyArray arr = read_npy(path);
  if (arr.data.dim() != 2) {
    throw InputError(path + ": text mask bitmap must be 2-d, got " +
                     std::to_string(arr.data.dim()) + " dimensions");
  }
  const auto st = arr.data.scalar_type();
  if (st != at::kByte && st != at::kBool) {
    throw InputError(path + ": text mask bitmap must be uint8 or bool, got dtype " + arr.descr);
  }
  return text_mask_from_bitmap(arr.data, height, width);
}

at::Tensor rendered_text_mask(int64_t height, int64_t width) {
  if (height <= 0 || width <= 0) throw UsageError("text mask needs a positive size");
  const int64_t s = std::max<int64_t>(1, std::min(height, width) / 80);
  const int64_t cell_w = (kGlyphW + 1) * s, line_h = (kGlyphH + 4) * s;
  const int64_t margin = cell_w;
  auto mask = at::ones({1, height, width}, at::kFloat);
  const int64_t cols = (width - 2 * margin + s) / cell_w;
  const int64_t rows = (height - margin) / line_h;
  if (cols <= 0 || rows <= 0) return mask;
  auto acc = mask.accessor<float, 3>();
  const auto lines = wrap(kLorem, cols);
  // Centre the block of lines vertically.
  const int64_t used = std::min<int64_t>(rows, static_cast<int64_t>(lines.size()));
  const int64_t top = (height - (used * line_h - 4 * s)) / 2;
  for (int64_t li = 0; li < used; ++li) {
    const std::string& line = lines[li];
    for (size_t ci = 0; ci < line.size(); ++ci) {
      const char* const* glyph = text_mask_glyph(line[ci]);
      if (glyph == nullptr) continue;
      const int64_t x0 = margin + static_cast<int64_t>(ci) * cell_w, y0 = top + li * line_h;
      for (int gy = 0; gy < kGlyphH; ++gy) {
        for (int gx = 0; gx < kGlyphW; ++gx) {
          if (glyph[gy][gx] != '#') continue;
          // Each font pixel covers s x s pixels, widened by s/2 to the right (a bold face).
          for (int64_t dy = 0; dy < s; ++dy) {
            for (int64_t dx = 0; dx < s + s / 2; ++dx) {
              const int64_t y = y0 + gy * s + dy, x = x0 + gx * s + dx;
              if (y >= 0 && y < height && x >= 0 && x < width) acc[0][y][x] = 0.f;
            }
          }
        }
      }
    }
  }
  return mask;
}

}  // namespace copaint
