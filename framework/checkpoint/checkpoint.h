// Checkpoint reading and writing: torch.save files (zip and legacy formats, through our own
// whitelisting pickle interpreter, safe on untrusted input), .safetensors files, and
// load_state_dict(), which finds the model's tensors inside the usual checkpoint nestings.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <string>
#include <utility>
#include <vector>

namespace copaint {

/// Ordered (file order) list of named tensors.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

/// Reads any file written by Python's torch.save, zip format (PyTorch >= 1.6) or legacy format,
/// and returns the saved object as an IValue tree: dict and OrderedDict -> GenericDict (keys as
/// IValues, insertion order), list -> GenericList, tuple, int, float, str (and bytes) -> string,
/// bool, None, torch dtype objects -> ScalarType, tensors on the CPU with their dtype, shape,
/// storage offset and strides (views of one storage share it, as in Python; a "cuda:0"
/// location loads on the CPU). Integers beyond 64 bits become doubles. A .safetensors file
/// gives a GenericDict of its tensors.
/// Only these globals are accepted: collections.OrderedDict, torch._utils._rebuild_tensor_v2 /
/// _rebuild_tensor / _rebuild_parameter, torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,
/// Byte,Bool}Storage, torch dtype objects, torch.Size and torch.jit._pickle.restore_type_tag
/// (read as the identity; LibTorch's pickle_save writes it); nothing from the file is executed.
/// Throws InputError naming the file (and the byte offset) on a missing, truncated, corrupt or
/// unsupported file, an unknown global or opcode, absurd sizes, or excessive nesting.
c10::IValue read_torch_file(const std::string& path);

/// Reads a .safetensors file (dtypes F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL), tensors
/// in header order. Throws InputError on a malformed file.
StateDict read_safetensors(const std::string& path);

/// Writes `tensors` as a .safetensors file (CPU copies, contiguous, in the given order, no
/// metadata). Throws UsageError on duplicate names or an unsupported dtype, InputError when the
/// file cannot be written.
void write_safetensors(const std::string& path, const StateDict& tensors);

/// Loads the tensors of a checkpoint in any format above (detected by content, not by name).
/// The state dict is found as follows, starting at the saved object (which must be a dict):
///  1. if the dict holds tensors itself, it is the state dict (its non-tensor entries, e.g.
///     "step", and non-string keys are ignored);
///  2. otherwise the first of "state_dict", "model_state_dict", "model" whose value is a dict
///     holding a state dict (found by these same rules, at most 3 levels down) is used;
///  3. otherwise, if exactly one dict value holds a state dict (e.g. only "ema", "net",
///     "params"), it is used; several candidates without a preferred name -> InputError.
/// So {"model": ..., "ema": ...} gives "model"; {"ema": ..., "step": ...} gives "ema".
/// A leading "module." (nn.DataParallel) is stripped from every key when all keys have it.
/// Tensors keep their storage sharing (a view stays a view). Throws InputError.
StateDict load_state_dict(const std::string& path);

/// load_state_dict(path), refusing a checkpoint with a NaN or infinite floating-point value (a
/// damaged or diverged checkpoint would give NaN samples that score nothing): InputError naming
/// the file and the tensor.
StateDict load_finite_state_dict(const std::string& path);

/// Container format by content: "zip", "legacy" or "safetensors"; InputError otherwise.
std::string checkpoint_format(const std::string& path);

}  // namespace copaint
