// torch.save readers (zip archive through PyTorchStreamReader, legacy stream), format detection
// and load_state_dict's unwrapping of checkpoint nestings (see framework/checkpoint.h).
#include "framework/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <ATen/core/jit_type.h>
#include <c10/core/CPUAllocator.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <unordered_map>

#include "framework/error.h"
#include "framework/mapped_file.h"
#include "framework/pickle.h"
#include "framework/torch_compat.h"

namespace copaint {
namespace {

enum class Format { kZip, kLegacy, kSafetensors };

// LONG1 opcode, length 10, then the little-endian bytes of torch's legacy MAGIC_NUMBER
// 0x1950a86a20f9469cfc6c.
const uint8_t kLegacyMagic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocolVersion = 1001;

uint64_t read_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}

std::string describe(const std::exception& e) {
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) return c10e->what_without_backtrace();
  return e.what();
}

Format detect(const MappedFile& f) {
  const uint8_t* d = f.data();
  const size_t n = f.size();
  if (n >= 4 && d[0] == 'P' && d[1] == 'K' &&
      ((d[2] == 3 && d[3] == 4) || (d[2] == 5 && d[3] == 6))) {
    return Format::kZip;
  }
  if (n >= 2 && d[0] == 0x80) {
    const uint8_t* end = d + std::min<size_t>(n, 48);
    if (std::search(d, end, std::begin(kLegacyMagic), std::end(kLegacyMagic)) != end) {
      return Format::kLegacy;
    }
  }
  if (n >= 10 && d[8] == '{' && read_le(d, 8) <= n - 8) return Format::kSafetensors;
  if (n >= 262 && std::memcmp(d + 257, "ustar", 5) == 0) {
    throw InputError(f.path() +
                     ": the tar-based torch.save format (PyTorch < 0.4) is not supported");
  }
  throw InputError(f.path() + ": not a torch.save (zip or legacy) or safetensors file");
}

// ---------------------------------------------------------------------------------------------
// Zip format.

/// ReadAdapterInterface over the mapped file that never reads outside it.
class BoundedAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedAdapter(const MappedFile& f) : f_(f) {}
  size_t size() const override { return f_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= f_.size()) return 0;
    n = std::min<uint64_t>(n, f_.size() - pos);
    std::memcpy(buf, f_.data() + pos, n);
    return n;
  }

 private:
  const MappedFile& f_;
};

/// Checks the zip central directory before miniz reads it: every entry's uncompressed size
/// must be at most the file size, so no record read can allocate more than the file holds
/// (torch.save never compresses; a compressed entry may not expand beyond the file size).
/// Also checks what PyTorchStreamReader's constructor checks after opening the archive (the
/// first entry lies in a folder, a readable version record), because libtorch 1.13 leaks the
/// miniz state when its constructor throws. Returns each record's CRC32 by name (without the
/// archive's folder prefix), which PyTorchStreamReader itself never checks.
std::unordered_map<std::string, uint32_t> check_zip_directory(const MappedFile& f) {
  const uint8_t* d = f.data();
  const uint64_t n = f.size();
  auto bad = [&](uint64_t pos, const std::string& what) {
    return InputError(f.path() + " byte " + std::to_string(pos) + ": corrupt zip archive: " + what);
  };
  if (n < 22) throw bad(0, "too short");
  uint64_t eocd = n;  // the last end-of-central-directory signature with room for the record
  const uint64_t lowest = n - 22 > 65535 ? n - 22 - 65535 : 0;
  for (uint64_t i = n - 22 + 1; i-- > lowest;) {
    if (read_le(d + i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == n) throw bad(n, "end of central directory not found");
  uint64_t entries = read_le(d + eocd + 10, 2);
  uint64_t cd_size = read_le(d + eocd + 12, 4);
  uint64_t cd_off = read_le(d + eocd + 16, 4);
  if (eocd >= 20 && read_le(d + eocd - 20, 4) == 0x07064b50) {
    const uint64_t z64 = read_le(d + eocd - 20 + 8, 8);
    if (z64 > n || n - z64 < 56 || read_le(d + z64, 4) != 0x06064b50) {
      throw bad(eocd - 20, "bad zip64 end of central directory");
    }
    entries = read_le(d + z64 + 32, 8);
    cd_size = read_le(d + z64 + 40, 8);
    cd_off = read_le(d + z64 + 48, 8);
  }
  if (cd_off > n || cd_size > n - cd_off) throw bad(eocd, "central directory outside the file");
  if (entries > cd_size / 46) throw bad(eocd, "too many entries for the central directory");
  const uint64_t cd_end = cd_off + cd_size;
  struct Entry {
    uint64_t flags, method, comp, local;
    uint32_t crc;
  };
  std::unordered_map<std::string, Entry> by_name;
  std::string first_name;
  uint64_t p = cd_off;
  for (uint64_t e = 0; e < entries; ++e) {
    if (cd_end - p < 46 || read_le(d + p, 4) != 0x02014b50)
      throw bad(p, "bad central directory entry");
    const uint64_t flags = read_le(d + p + 8, 2);
    const uint64_t method = read_le(d + p + 10, 2);
    const auto crc = static_cast<uint32_t>(read_le(d + p + 16, 4));
    uint64_t comp = read_le(d + p + 20, 4);
    uint64_t uncomp = read_le(d + p + 24, 4);
    const uint64_t name_len = read_le(d + p + 28, 2);
    const uint64_t extra_len = read_le(d + p + 30, 2);
    const uint64_t comment_len = read_le(d + p + 32, 2);
    uint64_t local = read_le(d + p + 42, 4);
    if (cd_end - p - 46 < name_len + extra_len + comment_len)
      throw bad(p, "entry overruns the directory");
    uint64_t q = p + 46 + name_len;
    const uint64_t extra_end = q + extra_len;
    while (extra_end - q >= 4) {
      const uint64_t id = read_le(d + q, 2);
      const uint64_t len = read_le(d + q + 2, 2);
      if (extra_end - q - 4 < len) throw bad(q, "bad extra field");
      if (id == 1) {  // zip64 sizes, present only for the fields that are 0xFFFFFFFF
        uint64_t r = q + 4;
        const uint64_t r_end = r + len;
        if (uncomp == 0xFFFFFFFFu) {
          if (r_end - r < 8) throw bad(q, "bad zip64 extra field");
          uncomp = read_le(d + r, 8);
          r += 8;
        }
        if (comp == 0xFFFFFFFFu) {
          if (r_end - r < 8) throw bad(q, "bad zip64 extra field");
          comp = read_le(d + r, 8);
          r += 8;
        }
        if (local == 0xFFFFFFFFu) {
          if (r_end - r < 8) throw bad(q, "bad zip64 extra field");
          local = read_le(d + r, 8);
        }
      }
      q += 4 + len;
    }
    if (comp > n || uncomp > n) {
      throw bad(p, "entry of " + std::to_string(uncomp) + " bytes is larger than the file");
    }
    std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
    if (e == 0) first_name = name;
    by_name.emplace(std::move(name), Entry{flags, method, comp, local, crc});
    p += 46 + name_len + extra_len + comment_len;
  }
  const size_t slash = first_name.find('/');
  if (slash == std::string::npos) throw bad(cd_off, "the first record is not in a folder");
  const std::string prefix = first_name.substr(0, slash + 1);
  auto version = by_name.find(prefix + ".data/version");
  if (version == by_name.end()) version = by_name.find(prefix + "version");
  if (version == by_name.end()) throw bad(cd_off, "no version record");
  const Entry& v = version->second;
  if (v.method != 0 || (v.flags & 1)) throw bad(cd_off, "the version record is not stored plainly");
  {  // the record must hold a number, as std::stoull reads it
    if (v.local > n || n - v.local < 30 || read_le(d + v.local, 4) != 0x04034b50) {
      throw bad(v.local, "bad local header of the version record");
    }
    const uint64_t data =
        v.local + 30 + read_le(d + v.local + 26, 2) + read_le(d + v.local + 28, 2);
    if (data > n || n - data < v.comp) throw bad(v.local, "version record outside the file");
    uint64_t k = 0, value = 0, digits = 0;
    while (k < v.comp && std::isspace(d[data + k])) ++k;
    for (; k < v.comp && std::isdigit(d[data + k]) && digits < 18; ++k, ++digits) {
      value = value * 10 + (d[data + k] - '0');
    }
    if (digits == 0 || value < caffe2::serialize::kMinSupportedFileFormatVersion ||
        value > caffe2::serialize::kMaxSupportedFileFormatVersion) {
      throw bad(data, "unsupported or corrupt version record");
    }
  }
  std::unordered_map<std::string, uint32_t> crcs;
  for (const auto& [name, entry] : by_name) {
    if (name.compare(0, prefix.size(), prefix) == 0) crcs[name.substr(prefix.size())] = entry.crc;
  }
  return crcs;
}

/// zlib's CRC32 of `n` bytes, in chunks (crc32 takes a 32-bit length).
uint32_t crc32_of(const void* data, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  for (size_t done = 0; done < n;) {
    const auto chunk = static_cast<uInt>(std::min<size_t>(n - done, size_t{1} << 30));
    crc = crc32(crc, p + done, chunk);
    done += chunk;
  }
  return static_cast<uint32_t>(crc);
}

c10::IValue read_zip(const MappedFile& f) {
  const auto crcs = check_zip_directory(f);
  const std::string& path = f.path();
  auto adapter = std::make_shared<BoundedAdapter>(f);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(adapter);
  } catch (const std::exception& e) {
    throw InputError(path + ": cannot read the zip archive: " + describe(e));
  }
  auto get_record = [&](const std::string& name) -> std::tuple<at::DataPtr, size_t> {
    try {
      if (!reader->hasRecord(name)) throw InputError(path + ": record '" + name + "' is missing");
      auto record = reader->getRecord(name);
      const auto crc = crcs.find(name);
      const uint32_t actual = crc32_of(std::get<0>(record).get(), std::get<1>(record));
      if (crc != crcs.end() && crc->second != actual) {
        char buf[96];
        std::snprintf(buf, sizeof buf, " fails its CRC32 check (stored %08x, computed %08x)",
                      crc->second, actual);
        throw InputError(path + ": record '" + name + "'" + buf + ": the file is damaged");
      }
      return record;
    } catch (const InputError&) {
      throw;
    } catch (const std::exception& e) {
      throw InputError(path + ": cannot read record '" + name + "': " + describe(e));
    }
  };
  bool has_byteorder = false;
  try {
    has_byteorder = reader->hasRecord("byteorder");
  } catch (const std::exception& e) {
    throw InputError(path + ": cannot read the zip archive: " + describe(e));
  }
  if (has_byteorder) {
    auto [ptr, size] = get_record("byteorder");
    if (std::string(static_cast<const char*>(ptr.get()), size) == "big") {
      throw InputError(path + ": big-endian checkpoints are not supported");
    }
  }
  auto [pkl, pkl_size] = get_record("data.pkl");

  std::unordered_map<std::string, c10::Storage> loaded;
  pickle::PersistentLoader loader = [&](const pickle::PersistentId& id, size_t offset) {
    const std::string at = path + " (data.pkl) byte " + std::to_string(offset) + ": ";
    if (id.has_view) throw InputError(at + "storage views are not expected in a zip checkpoint");
    const auto elsize = static_cast<int64_t>(pickle::element_size(id.dtype));
    int64_t nbytes = 0;
    if (pickle::mul_overflows(id.numel, elsize, &nbytes) ||
        static_cast<uint64_t>(nbytes) > f.size()) {
      throw InputError(at + "storage '" + id.key + "' of " + std::to_string(id.numel) +
                       " elements is larger than the file");
    }
    auto it = loaded.find(id.key);
    if (it == loaded.end()) {
      auto [ptr, size] = get_record("data/" + id.key);
      c10::Storage storage(c10::Storage::use_byte_size_t(), size, std::move(ptr), nullptr, false);
      if (id.dtype == at::kBool) {  // only 0 and 1 are valid bools
        auto* b = static_cast<uint8_t*>(mutable_storage_data(storage));
        for (size_t k = 0; k < size; ++k) b[k] = b[k] != 0;
      }
      it = loaded.emplace(id.key, std::move(storage)).first;
    }
    const auto have = static_cast<int64_t>(it->second.nbytes());
    if (have < nbytes) {
      throw InputError(at + "record data/" + id.key + " holds " + std::to_string(have) +
                       " bytes, the storage needs " + std::to_string(nbytes));
    }
    return pickle::StorageRef{it->second, 0, have, id.dtype};
  };
  pickle::Source source{static_cast<const uint8_t*>(pkl.get()), pkl_size, path + " (data.pkl)", 0};
  return pickle::unpickle(source, loader);
}

// ---------------------------------------------------------------------------------------------
// Legacy format: magic, protocol version, sys_info, object, storage keys, then each storage as
// an int64 element count followed by its raw bytes.

c10::IValue read_legacy(const MappedFile& f) {
  const std::string& path = f.path();
  size_t pos = 0;
  pickle::PersistentLoader no_storages = [&](const pickle::PersistentId&,
                                             size_t offset) -> pickle::StorageRef {
    throw InputError(path + " byte " + std::to_string(offset) + ": unexpected storage");
  };
  auto next_pickle = [&](const pickle::PersistentLoader& loader) {
    size_t used = 0;
    pickle::Source source{f.data() + pos, f.size() - pos, path, pos};
    c10::IValue v = pickle::unpickle(source, loader, &used);
    pos += used;
    return v;
  };
  next_pickle(no_storages);  // the magic number (detect() found it)
  const size_t version_pos = pos;
  const c10::IValue version = next_pickle(no_storages);
  if (!version.isInt() || version.toInt() != kLegacyProtocolVersion) {
    throw InputError(path + " byte " + std::to_string(version_pos) +
                     ": unsupported legacy protocol version");
  }
  const size_t sys_info_pos = pos;
  const c10::IValue sys_info = next_pickle(no_storages);
  if (sys_info.isGenericDict()) {
    const auto info = sys_info.toGenericDict();
    auto it = info.find(c10::IValue(std::string("little_endian")));
    if (it != info.end() && it->value().isBool() && !it->value().toBool()) {
      throw InputError(path + ": big-endian checkpoints are not supported");
    }
  } else {
    throw InputError(path + " byte " + std::to_string(sys_info_pos) + ": bad legacy header");
  }

  struct Root {
    c10::Storage storage;
    int64_t elsize{1};
    at::ScalarType dtype{at::kByte};
    bool filled{false};
  };
  std::unordered_map<std::string, Root> roots;
  std::unordered_map<std::string, pickle::StorageRef> views;
  uint64_t total_bytes = 0;
  pickle::PersistentLoader loader = [&](const pickle::PersistentId& id, size_t offset) {
    const std::string at = path + " byte " + std::to_string(offset) + ": ";
    const auto elsize = static_cast<int64_t>(pickle::element_size(id.dtype));
    int64_t nbytes = 0;
    // Every storage's bytes follow the pickle, so together they fit in the rest of the file.
    const uint64_t rest = offset < f.size() ? f.size() - offset : 0;
    if (pickle::mul_overflows(id.numel, elsize, &nbytes) || total_bytes > rest ||
        static_cast<uint64_t>(nbytes) > rest - total_bytes) {
      throw InputError(at + "storage '" + id.key + "' of " + std::to_string(id.numel) +
                       " elements is larger than the rest of the file");
    }
    auto it = roots.find(id.key);
    if (it == roots.end()) {
      total_bytes += static_cast<uint64_t>(nbytes);
      Root root{
          c10::Storage(c10::Storage::use_byte_size_t(), nbytes, c10::GetCPUAllocator(), false),
          elsize, id.dtype, false};
      it = roots.emplace(id.key, std::move(root)).first;
    }
    const auto have = static_cast<int64_t>(it->second.storage.nbytes());
    if (nbytes > have) {
      throw InputError(at + "storage '" + id.key + "' is referenced with different sizes");
    }
    if (!id.has_view) return pickle::StorageRef{it->second.storage, 0, have, id.dtype};
    auto v = views.find(id.view_key);
    if (v == views.end()) {
      int64_t begin = 0, size = 0, end = 0;
      if (pickle::mul_overflows(id.view_offset, elsize, &begin) ||
          pickle::mul_overflows(id.view_numel, elsize, &size) ||
          pickle::add_overflows(begin, size, &end) || end > have) {
        throw InputError(at + "storage view '" + id.view_key + "' lies outside its storage");
      }
      v = views.emplace(id.view_key, pickle::StorageRef{it->second.storage, begin, size, id.dtype})
              .first;
    }
    pickle::StorageRef ref = v->second;
    ref.dtype = id.dtype;
    return ref;
  };
  c10::IValue result = next_pickle(loader);

  const size_t keys_pos = pos;
  const c10::IValue keys = next_pickle(no_storages);
  if (!keys.isList()) {
    throw InputError(path + " byte " + std::to_string(keys_pos) + ": storage keys must be a list");
  }
  for (const c10::IValue& key : keys.toListRef()) {
    const size_t at_pos = pos;
    const std::string at = path + " byte " + std::to_string(at_pos) + ": ";
    if (!key.isString()) throw InputError(at + "storage key must be a string");
    auto it = roots.find(key.toStringRef());
    if (it == roots.end())
      throw InputError(at + "data for an unknown storage '" + key.toStringRef() + "'");
    Root& root = it->second;
    if (root.filled) throw InputError(at + "storage '" + key.toStringRef() + "' stored twice");
    if (f.size() - pos < 8) throw InputError(at + "truncated storage header");
    const auto numel = static_cast<int64_t>(read_le(f.data() + pos, 8));
    pos += 8;
    const auto nbytes = static_cast<int64_t>(root.storage.nbytes());
    int64_t expected = 0;
    if (numel < 0 || pickle::mul_overflows(numel, root.elsize, &expected) || expected != nbytes) {
      throw InputError(at + "storage '" + key.toStringRef() + "' has " + std::to_string(numel) +
                       " elements in the data, " + std::to_string(nbytes / root.elsize) +
                       " in the pickle");
    }
    if (f.size() - pos < static_cast<uint64_t>(nbytes)) {
      throw InputError(at + "truncated data of storage '" + key.toStringRef() + "'");
    }
    auto* dst = static_cast<uint8_t*>(mutable_storage_data(root.storage));
    if (nbytes > 0) std::memcpy(dst, f.data() + pos, static_cast<size_t>(nbytes));
    if (root.dtype == at::kBool) {  // only 0 and 1 are valid bools
      for (int64_t k = 0; k < nbytes; ++k) dst[k] = dst[k] != 0;
    }
    pos += static_cast<size_t>(nbytes);
    root.filled = true;
  }
  for (const auto& [key, root] : roots) {
    if (!root.filled) throw InputError(path + ": storage '" + key + "' has no data");
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// State dict extraction.

/// load_state_dict's search (rules in checkpoint.h). Results are cached per (dict, depth), so a
/// crafted file that shares one dict under many keys at every level cannot make it explode.
class StateDictFinder {
 public:
  explicit StateDictFinder(const std::string& path) : path_(path) {}

  std::optional<StateDict> find(const c10::IValue& v, int depth) {
    if (!v.isGenericDict()) return std::nullopt;
    const auto key = std::make_pair(static_cast<const void*>(v.internalToPointer()), depth);
    auto cached = cache_.find(key);
    if (cached != cache_.end()) return cached->second;
    std::optional<StateDict> result = search(v.toGenericDict(), depth);
    cache_.emplace(key, result);
    return result;
  }

 private:
  std::optional<StateDict> search(const c10::impl::GenericDict& dict, int depth) {
    StateDict direct;
    for (const auto& entry : dict) {
      if (entry.key().isString() && entry.value().isTensor()) {
        direct.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
      }
    }
    if (!direct.empty()) return direct;
    if (depth >= 3) return std::nullopt;
    for (const char* name : {"state_dict", "model_state_dict", "model"}) {
      auto it = dict.find(c10::IValue(std::string(name)));
      if (it == dict.end()) continue;
      if (auto found = find(it->value(), depth + 1)) return found;
    }
    std::optional<StateDict> only;
    std::vector<std::string> names;
    for (const auto& entry : dict) {
      if (auto found = find(entry.value(), depth + 1)) {
        names.push_back(entry.key().isString() ? entry.key().toStringRef() : "?");
        only = std::move(found);
      }
    }
    if (names.size() > 1) {
      std::string list;
      for (size_t k = 0; k < names.size() && k < 8; ++k) list += (k ? ", " : "") + names[k];
      if (names.size() > 8) list += ", ...";
      throw InputError(path_ + ": ambiguous checkpoint: several tensor dicts (" + list +
                       ") and none named state_dict, model_state_dict or model");
    }
    return only;
  }

  const std::string& path_;
  std::map<std::pair<const void*, int>, std::optional<StateDict>> cache_;
};

/// Runs a reader, turning library exceptions into InputError naming the file.
template <class Fn>
auto guarded(const std::string& path, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const InputError&) {
    throw;
  } catch (const UsageError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw InputError(path + ": out of memory while reading");
  } catch (const std::exception& e) {
    throw InputError(path + ": " + describe(e));
  }
}

}  // namespace

c10::IValue read_torch_file(const std::string& path) {
  return guarded(path, [&]() -> c10::IValue {
    MappedFile f(path);
    switch (detect(f)) {
      case Format::kZip:
        return read_zip(f);
      case Format::kLegacy:
        return read_legacy(f);
      case Format::kSafetensors: {
        c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
        for (auto& [name, tensor] : read_safetensors(path)) dict.insert(name, tensor);
        return dict;
      }
    }
    throw InputError(path + ": unknown format");
  });
}

std::string checkpoint_format(const std::string& path) {
  MappedFile f(path);
  switch (detect(f)) {
    case Format::kZip:
      return "zip";
    case Format::kLegacy:
      return "legacy";
    case Format::kSafetensors:
      return "safetensors";
  }
  return "";
}

StateDict load_state_dict(const std::string& path) {
  StateDict sd;
  if (checkpoint_format(path) == "safetensors") {
    sd = read_safetensors(path);
  } else {
    const c10::IValue root = read_torch_file(path);
    if (root.isTensor()) throw InputError(path + ": holds a single tensor, not a state dict");
    std::optional<StateDict> found = StateDictFinder(path).find(root, 0);
    if (!found) throw InputError(path + ": no tensors found in the checkpoint");
    sd = std::move(*found);
  }
  const std::string prefix = "module.";
  const bool all_prefixed = !sd.empty() && std::all_of(sd.begin(), sd.end(), [&](const auto& e) {
    return e.first.compare(0, prefix.size(), prefix) == 0;
  });
  if (all_prefixed) {
    for (auto& e : sd) e.first.erase(0, prefix.size());
  }
  return sd;
}

}  // namespace copaint
