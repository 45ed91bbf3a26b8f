// Safe interpreter for the pickles inside torch.save files: a whitelist of opcodes and globals,
// bounds-checked reads, tensors rebuilt over storages handed in by the caller. Internal to the
// checkpoint reader (framework/checkpoint/checkpoint.cpp); nothing here ever executes code from the
// file.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/Storage.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace copaint {
namespace pickle {

/// A typed window onto raw bytes that tensors are rebuilt over (views share `storage`).
struct StorageRef {
  c10::Storage storage;    ///< untyped CPU bytes, shared by every tensor and view of this key
  int64_t byte_offset{0};  ///< start of this (possibly legacy view) storage inside `storage`
  int64_t nbytes{0};       ///< bytes available from byte_offset on
  at::ScalarType dtype{at::kFloat};
};

/// Decoded persistent id ('storage', storage_type, key, location, numel[, view_metadata]).
struct PersistentId {
  std::string key;
  at::ScalarType dtype{at::kFloat};
  int64_t numel{0};
  std::string location;  ///< e.g. "cpu", "cuda:0"; ignored: everything loads on the CPU
  bool has_view{false};  ///< legacy format only: a view of the root storage `key`
  std::string view_key;
  int64_t view_offset{0};  ///< in elements
  int64_t view_numel{0};
};

/// Returns the storage for a persistent id; `offset` is the absolute byte offset of the
/// BINPERSID opcode (for error messages). Throws InputError.
using PersistentLoader = std::function<StorageRef(const PersistentId&, size_t offset)>;

/// Input to unpickle(): bytes [data, data + size), reported in errors as
/// "<where> byte <base_offset + position>".
struct Source {
  const uint8_t* data{nullptr};
  size_t size{0};
  std::string where;      ///< file (and record) name for error messages
  size_t base_offset{0};  ///< absolute offset of data[0] in the reported file/record
};

/// Interprets one pickle (up to and including its STOP opcode) and returns the object as an
/// IValue tree: dict / OrderedDict -> GenericDict (insertion order), list -> GenericList,
/// tuple, int, float, str/bytes -> string, bool, None, tensors (CPU, views share storage),
/// torch dtype objects -> ScalarType. Integers beyond 64 bits become doubles. `consumed`
/// (optional) receives the number of bytes read. Throws InputError (naming `where` and the
/// byte offset) on anything malformed, truncated, unsupported or not whitelisted.
c10::IValue unpickle(const Source& source, const PersistentLoader& loader,
                     size_t* consumed = nullptr);

/// Element size of the dtypes a checkpoint may hold (0 for any other dtype).
size_t element_size(at::ScalarType dtype);

/// a * b and a + b for non-negative sizes; false on overflow.
bool mul_overflows(int64_t a, int64_t b, int64_t* out);
bool add_overflows(int64_t a, int64_t b, int64_t* out);

}  // namespace pickle
}  // namespace copaint
