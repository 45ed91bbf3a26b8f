// Pillow and OpenCV 8-bit resampling, reimplemented from their documented algorithms so that
// the reference's preprocessing is reproduced to the bit.
#include "datasets/resample.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "framework/core/error.h"

namespace copaint {
namespace {

void check_u8_hwc(const at::Tensor& image, const char* what) {
  if (!image.defined() || image.dim() != 3 || image.scalar_type() != at::kByte) {
    throw UsageError(std::string(what) + " needs a uint8 [H,W,C] image");
  }
  if (image.size(0) <= 0 || image.size(1) <= 0 || image.size(2) <= 0) {
    throw UsageError(std::string(what) + " needs a non-empty image");
  }
}

// ---------------------------------------------------------------- Pillow (Resample.c semantics)

constexpr int kPrecisionBits = 32 - 8 - 2;

double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Coeffs {
  int64_t ksize = 0;
  std::vector<int64_t> xmin, count;  // first source index and number of taps per output
  std::vector<int32_t> k;            // fixed-point weights, ksize per output
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size).
Coeffs pil_coeffs(int64_t in_size, int64_t out_size, PilFilter filter) {
  double (*fn)(double) = nullptr;
  double support = 0;
  switch (filter) {
    case PilFilter::kBox:
      fn = box_filter, support = 0.5;
      break;
    case PilFilter::kBilinear:
      fn = bilinear_filter, support = 1.0;
      break;
    case PilFilter::kBicubic:
      fn = bicubic_filter, support = 2.0;
      break;
    case PilFilter::kNearest:
      throw UsageError("pil_coeffs: nearest has no kernel");
  }
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  support *= filterscale;
  Coeffs c;
  c.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(out_size * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);  // C cast truncates
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      w[x] = fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[xx * c.ksize + x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                                    : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.xmin[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t in) {
  if (in >= (1 << kPrecisionBits << 8)) return 255;
  if (in <= 0) return 0;
  return static_cast<uint8_t>(in >> kPrecisionBits);
}

// One pass along axis 1 (width) of a contiguous uint8 [H,W,C] array.
at::Tensor pil_pass_width(const at::Tensor& in, int64_t out_w, PilFilter filter) {
  const int64_t h = in.size(0), w = in.size(1), ch = in.size(2);
  const Coeffs c = pil_coeffs(w, out_w, filter);
  auto out = at::empty({h, out_w, ch}, at::kByte);
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &c.k[xx * c.ksize];
      for (int64_t b = 0; b < ch; ++b) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int64_t x = 0; x < c.count[xx]; ++x) {
          ss += static_cast<int32_t>(src[(y * w + x + c.xmin[xx]) * ch + b]) * k[x];
        }
        dst[(y * out_w + xx) * ch + b] = clip8(ss);
      }
    }
  }
  return out;
}

at::Tensor pil_nearest(const at::Tensor& in, int64_t out_h, int64_t out_w) {
  // Pillow resizes "nearest" through an affine transform sampling at pixel centres.
  const int64_t h = in.size(0), w = in.size(1);
  std::vector<int64_t> rows(out_h), cols(out_w);
  const double sy = static_cast<double>(h) / out_h, sx = static_cast<double>(w) / out_w;
  for (int64_t y = 0; y < out_h; ++y)
    rows[y] = std::min<int64_t>(h - 1, static_cast<int64_t>((y + 0.5) * sy));
  for (int64_t x = 0; x < out_w; ++x)
    cols[x] = std::min<int64_t>(w - 1, static_cast<int64_t>((x + 0.5) * sx));
  auto ri = at::tensor(rows, at::kLong), ci = at::tensor(cols, at::kLong);
  return in.index_select(0, ri).index_select(1, ci).contiguous();
}

// ---------------------------------------------------------------- OpenCV (resize.cpp semantics)

constexpr int kCoefBits = 11;
constexpr int kCoefScale = 1 << kCoefBits;

void opencv_cubic_coeffs(float x, float* c) {
  const float A = -0.75f;
  c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
  c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = 1.f - c[0] - c[1] - c[2];
}

inline int16_t saturate_short(float v) {
  const long r = std::lrint(v);  // cvRound: round half to even
  return static_cast<int16_t>(std::clamp<long>(r, INT16_MIN, INT16_MAX));
}

// Source offsets (sx - 1 .. sx + 2, clamped) and fixed-point weights for every output index.
void opencv_axis(int64_t in_size, int64_t out_size, std::vector<int64_t>& idx,
                 std::vector<int16_t>& wt) {
  const double inv_scale = static_cast<double>(out_size) / in_size;
  const double scale = 1. / inv_scale;
  idx.resize(out_size * 4);
  wt.resize(out_size * 4);
  for (int64_t d = 0; d < out_size; ++d) {
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    const int64_t s = static_cast<int64_t>(std::floor(f));
    f -= static_cast<float>(s);
    float c[4];
    opencv_cubic_coeffs(f, c);
    for (int k = 0; k < 4; ++k) {
      idx[d * 4 + k] = std::clamp<int64_t>(s - 1 + k, 0, in_size - 1);
      wt[d * 4 + k] = saturate_short(c[k] * kCoefScale);
    }
  }
}

}  // namespace

at::Tensor pil_resize(const at::Tensor& image, int64_t out_h, int64_t out_w, PilFilter filter) {
  check_u8_hwc(image, "pil_resize");
  if (out_h <= 0 || out_w <= 0) throw UsageError("pil_resize needs a positive output size");
  auto in = image.contiguous();
  if (out_h == in.size(0) && out_w == in.size(1)) return in.clone();
  if (filter == PilFilter::kNearest) return pil_nearest(in, out_h, out_w);
  at::Tensor x = in;
  // Pillow skips a pass whose axis keeps its size; horizontal first, then vertical.
  if (out_w != x.size(1)) x = pil_pass_width(x, out_w, filter);
  if (out_h != x.size(0)) {
    x = pil_pass_width(x.transpose(0, 1).contiguous(), out_h, filter).transpose(0, 1).contiguous();
  }
  return x;
}

at::Tensor center_crop_arr(const at::Tensor& image, int64_t size) {
  check_u8_hwc(image, "center_crop_arr");
  if (size <= 0) throw UsageError("center_crop_arr needs a positive size");
  at::Tensor x = image.contiguous();
  while (std::min(x.size(0), x.size(1)) >= 2 * size) {
    x = pil_resize(x, x.size(0) / 2, x.size(1) / 2, PilFilter::kBox);
  }
  const double scale = static_cast<double>(size) / std::min(x.size(0), x.size(1));
  const int64_t h = static_cast<int64_t>(std::nearbyint(x.size(0) * scale));
  const int64_t w = static_cast<int64_t>(std::nearbyint(x.size(1) * scale));
  x = pil_resize(x, h, w, PilFilter::kBicubic);
  const int64_t top = (h - size) / 2, left = (w - size) / 2;
  return x.slice(0, top, top + size).slice(1, left, left + size).contiguous();
}

at::Tensor pil_to_gray(const at::Tensor& image) {
  check_u8_hwc(image, "pil_to_gray");
  const int64_t c = image.size(2);
  if (c == 1) return image.contiguous();
  if (c == 2) return image.slice(2, 0, 1).contiguous();  // LA: luminance band
  if (c != 3 && c != 4) throw UsageError("pil_to_gray needs 1 to 4 channels");
  auto rgb = image.slice(2, 0, 3).to(at::kInt);
  auto l = (rgb.select(2, 0) * 19595 + rgb.select(2, 1) * 38470 + rgb.select(2, 2) * 7471 + 0x8000)
               .__rshift__(16);
  return l.to(at::kByte).unsqueeze(2).contiguous();
}

at::Tensor opencv_resize_cubic_u8(const at::Tensor& image, int64_t out_h, int64_t out_w,
                                  int64_t simd_lanes) {
  if (!image.defined() || image.dim() != 2 || image.scalar_type() != at::kByte) {
    throw UsageError("opencv_resize_cubic_u8 needs a uint8 [H,W] image");
  }
  if (out_h <= 0 || out_w <= 0) throw UsageError("opencv_resize_cubic_u8 needs a positive size");
  auto in = image.contiguous();
  const int64_t ih = in.size(0), iw = in.size(1);
  if (ih == out_h && iw == out_w) return in.clone();  // cv::resize copies same-size input
  std::vector<int64_t> xi, yi;
  std::vector<int16_t> xw, yw;
  opencv_axis(iw, out_w, xi, xw);
  opencv_axis(ih, out_h, yi, yw);

  // Horizontal pass, exact integers: every source row that the vertical pass reads.
  const uint8_t* src = in.data_ptr<uint8_t>();
  std::vector<int32_t> rows(ih * out_w);
  for (int64_t r = 0; r < ih; ++r) {
    for (int64_t d = 0; d < out_w; ++d) {
      int32_t v = 0;
      for (int k = 0; k < 4; ++k)
        v += src[r * iw + xi[d * 4 + k]] * static_cast<int32_t>(xw[d * 4 + k]);
      rows[r * out_w + d] = v;
    }
  }

  auto out = at::empty({out_h, out_w}, at::kByte);
  uint8_t* dst = out.data_ptr<uint8_t>();
  const float scale = 1.f / (kCoefScale * kCoefScale);
  const int64_t lanes = std::max<int64_t>(1, simd_lanes);
  const int64_t simd_end = simd_lanes > 0 ? (out_w / lanes) * lanes : 0;
  for (int64_t d = 0; d < out_h; ++d) {
    const int32_t* S[4];
    for (int k = 0; k < 4; ++k) S[k] = &rows[yi[d * 4 + k] * out_w];
    const int16_t* b = &yw[d * 4];
    const float b0 = b[0] * scale, b1 = b[1] * scale, b2 = b[2] * scale, b3 = b[3] * scale;
    for (int64_t x = 0; x < simd_end; ++x) {
      // The SIMD kernel: S0*b0 + (S1*b1 + (S2*b2 + S3*b3)) in float, separate mul and add.
      float t = static_cast<float>(S[3][x]) * b3;
      t = static_cast<float>(S[2][x]) * b2 + t;
      t = static_cast<float>(S[1][x]) * b1 + t;
      t = static_cast<float>(S[0][x]) * b0 + t;
      const long r = std::lrint(t);
      dst[d * out_w + x] =
          static_cast<uint8_t>(std::clamp<long>(std::clamp<long>(r, INT16_MIN, INT16_MAX), 0, 255));
    }
    for (int64_t x = simd_end; x < out_w; ++x) {
      const int64_t v = static_cast<int64_t>(S[0][x]) * b[0] +
                        static_cast<int64_t>(S[1][x]) * b[1] +
                        static_cast<int64_t>(S[2][x]) * b[2] + static_cast<int64_t>(S[3][x]) * b[3];
      const int64_t r = (v + (int64_t{1} << (2 * kCoefBits - 1))) >> (2 * kCoefBits);
      dst[d * out_w + x] = static_cast<uint8_t>(std::clamp<int64_t>(r, 0, 255));
    }
  }
  return out;
}

}  // namespace copaint
