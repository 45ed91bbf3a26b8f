// torch.save readers (zip archive through PyTorchStreamReader, legacy stream), format detection
// and load_state_dict's unwrapping of checkpoint nestings (see framework/checkpoint/checkpoint.h).
#include "framework/checkpoint/checkpoint.h"

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

#include "framework/checkpoint/mapped_file.h"
#include "framework/checkpoint/pickle.h"
#include "framework/core/error.h"
#include "framework/core/torch_compat.h"

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

/// The error for a corrupt zip archive at byte `pos` of `f`.
InputError corrupt_zip(const MappedFile& f, uint64_t pos, const std::string& what) {
  return InputError(f.path() + " byte " + std::to_string(pos) + ": corrupt zip archive: " + what);
}

/// Where the central directory lies, as the end-of-central-directory record (or its zip64
/// version) says.
struct ZipDirectory {
  uint64_t eocd = 0;  ///< offset of the end-of-central-directory record
  uint64_t entries = 0, size = 0, offset = 0;
};

/// Finds the last end-of-central-directory record with room for itself (and its zip64 version)
/// and checks that the directory it describes lies inside the file.
ZipDirectory find_central_directory(const MappedFile& f) {
  const uint8_t* d = f.data();
  const uint64_t n = f.size();
  if (n < 22) throw corrupt_zip(f, 0, "too short");
  uint64_t eocd = n;  // the last end-of-central-directory signature with room for the record
  const uint64_t lowest = n - 22 > 65535 ? n - 22 - 65535 : 0;
  for (uint64_t i = n - 22 + 1; i-- > lowest;) {
    if (read_le(d + i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == n) throw corrupt_zip(f, n, "end of central directory not found");
  ZipDirectory dir;
  dir.eocd = eocd;
  dir.entries = read_le(d + eocd + 10, 2);
  dir.size = read_le(d + eocd + 12, 4);
  dir.offset = read_le(d + eocd + 16, 4);
  if (eocd >= 20 && read_le(d + eocd - 20, 4) == 0x07064b50) {
    const uint64_t z64 = read_le(d + eocd - 20 + 8, 8);
    if (z64 > n || n - z64 < 56 || read_le(d + z64, 4) != 0x06064b50) {
      throw corrupt_zip(f, eocd - 20, "bad zip64 end of central directory");
    }
    dir.entries = read_le(d + z64 + 32, 8);
    dir.size = read_le(d + z64 + 40, 8);
    dir.offset = read_le(d + z64 + 48, 8);
  }
  if (dir.offset > n || dir.size > n - dir.offset) {
    throw corrupt_zip(f, eocd, "central directory outside the file");
  }
  if (dir.entries > dir.size / 46) {
    throw corrupt_zip(f, eocd, "too many entries for the central directory");
  }
  return dir;
}

/// One central directory entry, as far as the checks need it.
struct ZipEntry {
  uint64_t flags, method, comp, local;
  uint32_t crc;
};

/// Reads the zip64 sizes of the extra fields in [q, extra_end) into those of `uncomp`, `comp`
/// and `local` that are 0xFFFFFFFF.
void read_zip64_extra(const MappedFile& f, uint64_t q, uint64_t extra_end, uint64_t& uncomp,
                      uint64_t& comp, uint64_t& local) {
  const uint8_t* d = f.data();
  while (extra_end - q >= 4) {
    const uint64_t id = read_le(d + q, 2);
    const uint64_t len = read_le(d + q + 2, 2);
    if (extra_end - q - 4 < len) throw corrupt_zip(f, q, "bad extra field");
    if (id == 1) {  // zip64 sizes, present only for the fields that are 0xFFFFFFFF
      uint64_t r = q + 4;
      const uint64_t r_end = r + len;
      for (uint64_t* field : {&uncomp, &comp, &local}) {
        if (*field != 0xFFFFFFFFu) continue;
        if (r_end - r < 8) throw corrupt_zip(f, q, "bad zip64 extra field");
        *field = read_le(d + r, 8);
        r += 8;
      }
    }
    q += 4 + len;
  }
}

/// Reads the central directory's entries by name (`first_name` gets the first entry's), each no
/// larger than the file.
std::unordered_map<std::string, ZipEntry> read_central_entries(const MappedFile& f,
                                                               const ZipDirectory& dir,
                                                               std::string& first_name) {
  const uint8_t* d = f.data();
  const uint64_t n = f.size();
  const uint64_t cd_end = dir.offset + dir.size;
  std::unordered_map<std::string, ZipEntry> by_name;
  uint64_t p = dir.offset;
  for (uint64_t e = 0; e < dir.entries; ++e) {
    if (cd_end - p < 46 || read_le(d + p, 4) != 0x02014b50) {
      throw corrupt_zip(f, p, "bad central directory entry");
    }
    const uint64_t flags = read_le(d + p + 8, 2);
    const uint64_t method = read_le(d + p + 10, 2);
    const auto crc = static_cast<uint32_t>(read_le(d + p + 16, 4));
    uint64_t comp = read_le(d + p + 20, 4);
    uint64_t uncomp = read_le(d + p + 24, 4);
    const uint64_t name_len = read_le(d + p + 28, 2);
    const uint64_t extra_len = read_le(d + p + 30, 2);
    const uint64_t comment_len = read_le(d + p + 32, 2);
    uint64_t local = read_le(d + p + 42, 4);
    if (cd_end - p - 46 < name_len + extra_len + comment_len) {
      throw corrupt_zip(f, p, "entry overruns the directory");
    }
    const uint64_t q = p + 46 + name_len;
    read_zip64_extra(f, q, q + extra_len, uncomp, comp, local);
    if (comp > n || uncomp > n) {
      throw corrupt_zip(f, p,
                        "entry of " + std::to_string(uncomp) + " bytes is larger than the file");
    }
    std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
    if (e == 0) first_name = name;
    by_name.emplace(std::move(name), ZipEntry{flags, method, comp, local, crc});
    p += 46 + name_len + extra_len + comment_len;
  }
  return by_name;
}

/// Checks that the version record (entry `v`) is stored plainly inside the file and holds a
/// number PyTorchStreamReader supports, as std::stoull reads it; `cd_off` is the directory's
/// offset, for the errors.
void check_version_record(const MappedFile& f, const ZipEntry& v, uint64_t cd_off) {
  const uint8_t* d = f.data();
  const uint64_t n = f.size();
  if (v.method != 0 || (v.flags & 1)) {
    throw corrupt_zip(f, cd_off, "the version record is not stored plainly");
  }
  if (v.local > n || n - v.local < 30 || read_le(d + v.local, 4) != 0x04034b50) {
    throw corrupt_zip(f, v.local, "bad local header of the version record");
  }
  const uint64_t data = v.local + 30 + read_le(d + v.local + 26, 2) + read_le(d + v.local + 28, 2);
  if (data > n || n - data < v.comp)
    throw corrupt_zip(f, v.local, "version record outside the file");
  uint64_t k = 0, value = 0, digits = 0;
  while (k < v.comp && std::isspace(d[data + k])) ++k;
  for (; k < v.comp && std::isdigit(d[data + k]) && digits < 18; ++k, ++digits) {
    value = value * 10 + (d[data + k] - '0');
  }
  if (digits == 0 || value < caffe2::serialize::kMinSupportedFileFormatVersion ||
      value > caffe2::serialize::kMaxSupportedFileFormatVersion) {
    throw corrupt_zip(f, data, "unsupported or corrupt version record");
  }
}

/// Checks the zip central directory before miniz reads it: every entry's uncompressed size
/// must be at most the file size, so no record read can allocate more than the file holds
/// (torch.save never compresses; a compressed entry may not expand beyond the file size).
/// Also checks what PyTorchStreamReader's constructor checks after opening the archive (the
/// first entry lies in a folder, a readable version record), because libtorch 1.13 leaks the
/// miniz state when its constructor throws. Returns each record's CRC32 by name (without the
/// archive's folder prefix), which PyTorchStreamReader itself never checks.
std::unordered_map<std::string, uint32_t> check_zip_directory(const MappedFile& f) {
  const ZipDirectory dir = find_central_directory(f);
  std::string first_name;
  const std::unordered_map<std::string, ZipEntry> by_name =
      read_central_entries(f, dir, first_name);
  const size_t slash = first_name.find('/');
  if (slash == std::string::npos) {
    throw corrupt_zip(f, dir.offset, "the first record is not in a folder");
  }
  const std::string prefix = first_name.substr(0, slash + 1);
  auto version = by_name.find(prefix + ".data/version");
  if (version == by_name.end()) version = by_name.find(prefix + "version");
  if (version == by_name.end()) throw corrupt_zip(f, dir.offset, "no version record");
  check_version_record(f, version->second, dir.offset);
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

/// The records of a zip checkpoint through PyTorchStreamReader, each checked against the CRC32
/// its central directory stores.
class ZipRecords {
 public:
  /// Checks the directory of `f` (check_zip_directory), then opens the archive.
  explicit ZipRecords(const MappedFile& f)
      : path_(f.path()),
        crcs_(check_zip_directory(f)),
        adapter_(std::make_shared<BoundedAdapter>(f)) {
    try {
      reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(adapter_);
    } catch (const std::exception& e) {
      throw InputError(path_ + ": cannot read the zip archive: " + describe(e));
    }
  }

  /// Whether the archive holds the record `name`.
  bool has(const std::string& name) const {
    try {
      return reader_->hasRecord(name);
    } catch (const std::exception& e) {
      throw InputError(path_ + ": cannot read the zip archive: " + describe(e));
    }
  }

  /// The bytes of record `name`; throws InputError when it is missing, unreadable or fails its
  /// CRC32 check.
  std::tuple<at::DataPtr, size_t> get(const std::string& name) const {
    try {
      if (!reader_->hasRecord(name)) {
        throw InputError(path_ + ": record '" + name + "' is missing");
      }
      auto record = reader_->getRecord(name);
      const auto crc = crcs_.find(name);
      const uint32_t actual = crc32_of(std::get<0>(record).get(), std::get<1>(record));
      if (crc != crcs_.end() && crc->second != actual) {
        char buf[96];
        std::snprintf(buf, sizeof buf, " fails its CRC32 check (stored %08x, computed %08x)",
                      crc->second, actual);
        throw InputError(path_ + ": record '" + name + "'" + buf + ": the file is damaged");
      }
      return record;
    } catch (const InputError&) {
      throw;
    } catch (const std::exception& e) {
      throw InputError(path_ + ": cannot read record '" + name + "': " + describe(e));
    }
  }

 private:
  const std::string path_;
  const std::unordered_map<std::string, uint32_t> crcs_;
  std::shared_ptr<BoundedAdapter> adapter_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
};

/// The storages of a zip checkpoint's data.pkl, each read from its record data/<key> once.
class ZipStorages {
 public:
  /// Storages of `f`, read from `records`.
  ZipStorages(const MappedFile& f, const ZipRecords& records) : f_(f), records_(records) {}

  /// The persistent loader for data.pkl (the reference at byte `offset`): no views, and no
  /// storage larger than the file or than its record.
  pickle::StorageRef load(const pickle::PersistentId& id, size_t offset) {
    const std::string at = f_.path() + " (data.pkl) byte " + std::to_string(offset) + ": ";
    if (id.has_view) throw InputError(at + "storage views are not expected in a zip checkpoint");
    const auto elsize = static_cast<int64_t>(pickle::element_size(id.dtype));
    int64_t nbytes = 0;
    if (pickle::mul_overflows(id.numel, elsize, &nbytes) ||
        static_cast<uint64_t>(nbytes) > f_.size()) {
      throw InputError(at + "storage '" + id.key + "' of " + std::to_string(id.numel) +
                       " elements is larger than the file");
    }
    auto it = loaded_.find(id.key);
    if (it == loaded_.end()) {
      auto [ptr, size] = records_.get("data/" + id.key);
      c10::Storage storage(c10::Storage::use_byte_size_t(), size, std::move(ptr), nullptr, false);
      if (id.dtype == at::kBool) {  // only 0 and 1 are valid bools
        auto* b = static_cast<uint8_t*>(mutable_storage_data(storage));
        for (size_t k = 0; k < size; ++k) b[k] = b[k] != 0;
      }
      it = loaded_.emplace(id.key, std::move(storage)).first;
    }
    const auto have = static_cast<int64_t>(it->second.nbytes());
    if (have < nbytes) {
      throw InputError(at + "record data/" + id.key + " holds " + std::to_string(have) +
                       " bytes, the storage needs " + std::to_string(nbytes));
    }
    return pickle::StorageRef{it->second, 0, have, id.dtype};
  }

 private:
  const MappedFile& f_;
  const ZipRecords& records_;
  std::unordered_map<std::string, c10::Storage> loaded_;
};

c10::IValue read_zip(const MappedFile& f) {
  const ZipRecords records(f);
  if (records.has("byteorder")) {
    auto [ptr, size] = records.get("byteorder");
    if (std::string(static_cast<const char*>(ptr.get()), size) == "big") {
      throw InputError(f.path() + ": big-endian checkpoints are not supported");
    }
  }
  auto [pkl, pkl_size] = records.get("data.pkl");
  ZipStorages storages(f, records);
  pickle::Source source{static_cast<const uint8_t*>(pkl.get()), pkl_size, f.path() + " (data.pkl)",
                        0};
  return pickle::unpickle(source, [&storages](const pickle::PersistentId& id, size_t offset) {
    return storages.load(id, offset);
  });
}

// ---------------------------------------------------------------------------------------------
// Legacy format: magic, protocol version, sys_info, object, storage keys, then each storage as
// an int64 element count followed by its raw bytes.

/// A legacy stream's pickles, read one after another.
class LegacyStream {
 public:
  /// Reads `f` from its start.
  explicit LegacyStream(const MappedFile& f) : f_(f) {
    no_storages_ = [this](const pickle::PersistentId&, size_t offset) -> pickle::StorageRef {
      throw InputError(f_.path() + " byte " + std::to_string(offset) + ": unexpected storage");
    };
  }
  LegacyStream(const LegacyStream&) = delete;
  LegacyStream& operator=(const LegacyStream&) = delete;

  /// The next pickle, its storages resolved by `loader`.
  c10::IValue next(const pickle::PersistentLoader& loader) {
    size_t used = 0;
    pickle::Source source{f_.data() + pos_, f_.size() - pos_, f_.path(), pos_};
    c10::IValue v = pickle::unpickle(source, loader, &used);
    pos_ += used;
    return v;
  }

  /// The next pickle, which must reference no storage.
  c10::IValue next_plain() { return next(no_storages_); }

  /// The offset of the next byte to read.
  size_t pos() const { return pos_; }
  /// Moves on by `n` bytes (read directly through file()).
  void skip(size_t n) { pos_ += n; }
  /// The file read.
  const MappedFile& file() const { return f_; }

 private:
  const MappedFile& f_;
  size_t pos_ = 0;
  pickle::PersistentLoader no_storages_;
};

/// Reads the header pickles: the magic number (detect() found it), the protocol version and
/// sys_info (which must not say big-endian).
void read_legacy_header(LegacyStream& in) {
  const std::string& path = in.file().path();
  in.next_plain();  // the magic number
  const size_t version_pos = in.pos();
  const c10::IValue version = in.next_plain();
  if (!version.isInt() || version.toInt() != kLegacyProtocolVersion) {
    throw InputError(path + " byte " + std::to_string(version_pos) +
                     ": unsupported legacy protocol version");
  }
  const size_t sys_info_pos = in.pos();
  const c10::IValue sys_info = in.next_plain();
  if (sys_info.isGenericDict()) {
    const auto info = sys_info.toGenericDict();
    auto it = info.find(c10::IValue(std::string("little_endian")));
    if (it != info.end() && it->value().isBool() && !it->value().toBool()) {
      throw InputError(path + ": big-endian checkpoints are not supported");
    }
  } else {
    throw InputError(path + " byte " + std::to_string(sys_info_pos) + ": bad legacy header");
  }
}

/// The storages of a legacy pickle: allocated at their first reference, filled from the data
/// that follows the pickle.
class LegacyStorages {
 public:
  /// Storages of the legacy file `f`.
  explicit LegacyStorages(const MappedFile& f) : f_(f) {}

  /// The persistent loader for the object pickle (its reference at byte `offset`): every
  /// storage's bytes follow the pickle, so together they must fit in the rest of the file.
  pickle::StorageRef load(const pickle::PersistentId& id, size_t offset) {
    const std::string at = f_.path() + " byte " + std::to_string(offset) + ": ";
    const auto elsize = static_cast<int64_t>(pickle::element_size(id.dtype));
    int64_t nbytes = 0;
    const uint64_t rest = offset < f_.size() ? f_.size() - offset : 0;
    if (pickle::mul_overflows(id.numel, elsize, &nbytes) || total_bytes_ > rest ||
        static_cast<uint64_t>(nbytes) > rest - total_bytes_) {
      throw InputError(at + "storage '" + id.key + "' of " + std::to_string(id.numel) +
                       " elements is larger than the rest of the file");
    }
    auto it = roots_.find(id.key);
    if (it == roots_.end()) {
      total_bytes_ += static_cast<uint64_t>(nbytes);
      Root root{
          c10::Storage(c10::Storage::use_byte_size_t(), nbytes, c10::GetCPUAllocator(), false),
          elsize, id.dtype, false};
      it = roots_.emplace(id.key, std::move(root)).first;
    }
    const auto have = static_cast<int64_t>(it->second.storage.nbytes());
    if (nbytes > have) {
      throw InputError(at + "storage '" + id.key + "' is referenced with different sizes");
    }
    if (!id.has_view) return pickle::StorageRef{it->second.storage, 0, have, id.dtype};
    return view(id, it->second.storage, have, at);
  }

  /// Reads the storage key list at the stream's position, then each listed storage's element
  /// count and bytes; every storage must get its data exactly once.
  void read_data(LegacyStream& in) {
    const std::string& path = f_.path();
    const size_t keys_pos = in.pos();
    const c10::IValue keys = in.next_plain();
    if (!keys.isList()) {
      throw InputError(path + " byte " + std::to_string(keys_pos) +
                       ": storage keys must be a list");
    }
    for (const c10::IValue& key : keys.toListRef()) fill(in, key);
    for (const auto& [key, root] : roots_) {
      if (!root.filled) throw InputError(path + ": storage '" + key + "' has no data");
    }
  }

 private:
  struct Root {
    c10::Storage storage;
    int64_t elsize{1};
    at::ScalarType dtype{at::kByte};
    bool filled{false};
  };

  /// The view `id` names into `storage` (`have` bytes), made at its first reference and checked
  /// to lie inside; `at` starts the errors.
  pickle::StorageRef view(const pickle::PersistentId& id, const c10::Storage& storage, int64_t have,
                          const std::string& at) {
    const auto elsize = static_cast<int64_t>(pickle::element_size(id.dtype));
    auto v = views_.find(id.view_key);
    if (v == views_.end()) {
      int64_t begin = 0, size = 0, end = 0;
      if (pickle::mul_overflows(id.view_offset, elsize, &begin) ||
          pickle::mul_overflows(id.view_numel, elsize, &size) ||
          pickle::add_overflows(begin, size, &end) || end > have) {
        throw InputError(at + "storage view '" + id.view_key + "' lies outside its storage");
      }
      v = views_.emplace(id.view_key, pickle::StorageRef{storage, begin, size, id.dtype}).first;
    }
    pickle::StorageRef ref = v->second;
    ref.dtype = id.dtype;
    return ref;
  }

  /// Copies the data of the storage `key` at the stream's position (an int64 element count,
  /// then the raw bytes) into its root.
  void fill(LegacyStream& in, const c10::IValue& key) {
    const std::string at = f_.path() + " byte " + std::to_string(in.pos()) + ": ";
    if (!key.isString()) throw InputError(at + "storage key must be a string");
    auto it = roots_.find(key.toStringRef());
    if (it == roots_.end()) {
      throw InputError(at + "data for an unknown storage '" + key.toStringRef() + "'");
    }
    Root& root = it->second;
    if (root.filled) throw InputError(at + "storage '" + key.toStringRef() + "' stored twice");
    if (f_.size() - in.pos() < 8) throw InputError(at + "truncated storage header");
    const auto numel = static_cast<int64_t>(read_le(f_.data() + in.pos(), 8));
    in.skip(8);
    const auto nbytes = static_cast<int64_t>(root.storage.nbytes());
    int64_t expected = 0;
    if (numel < 0 || pickle::mul_overflows(numel, root.elsize, &expected) || expected != nbytes) {
      throw InputError(at + "storage '" + key.toStringRef() + "' has " + std::to_string(numel) +
                       " elements in the data, " + std::to_string(nbytes / root.elsize) +
                       " in the pickle");
    }
    if (f_.size() - in.pos() < static_cast<uint64_t>(nbytes)) {
      throw InputError(at + "truncated data of storage '" + key.toStringRef() + "'");
    }
    auto* dst = static_cast<uint8_t*>(mutable_storage_data(root.storage));
    if (nbytes > 0) std::memcpy(dst, f_.data() + in.pos(), static_cast<size_t>(nbytes));
    if (root.dtype == at::kBool) {  // only 0 and 1 are valid bools
      for (int64_t k = 0; k < nbytes; ++k) dst[k] = dst[k] != 0;
    }
    in.skip(static_cast<size_t>(nbytes));
    root.filled = true;
  }

  const MappedFile& f_;
  std::unordered_map<std::string, Root> roots_;
  std::unordered_map<std::string, pickle::StorageRef> views_;
  uint64_t total_bytes_ = 0;
};

c10::IValue read_legacy(const MappedFile& f) {
  LegacyStream in(f);
  read_legacy_header(in);
  LegacyStorages storages(f);
  c10::IValue result = in.next([&storages](const pickle::PersistentId& id, size_t offset) {
    return storages.load(id, offset);
  });
  storages.read_data(in);
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

StateDict load_finite_state_dict(const std::string& path) {
  StateDict sd = load_state_dict(path);
  for (const auto& [name, tensor] : sd) {
    if (at::isFloatingType(tensor.scalar_type()) && !at::isfinite(tensor).all().item<bool>()) {
      throw InputError(path + ": tensor '" + name + "' holds NaN or infinite values");
    }
  }
  return sd;
}

}  // namespace copaint
