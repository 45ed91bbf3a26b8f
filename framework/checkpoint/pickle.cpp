// Whitelisting interpreter for torch.save pickles (see framework/checkpoint/pickle.h): opcodes,
// globals, tensor rebuilding over caller-provided storages, conversion of the object graph to
// IValues.
#include "framework/checkpoint/pickle.h"

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/jit_type.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "framework/core/error.h"

namespace copaint {
namespace pickle {

bool mul_overflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }
bool add_overflows(int64_t a, int64_t b, int64_t* out) { return __builtin_add_overflow(a, b, out); }

size_t element_size(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
    case at::kLong:
      return 8;
    case at::kFloat:
    case at::kInt:
      return 4;
    case at::kHalf:
    case at::kBFloat16:
    case at::kShort:
      return 2;
    case at::kChar:
    case at::kByte:
    case at::kBool:
      return 1;
    default:
      return 0;
  }
}

namespace {

// Limits that keep memory proportional to (and far below a small multiple of) the input.
constexpr size_t kMaxObjects = size_t(1) << 23;  // objects created by the pickle
constexpr size_t kMaxRefs = size_t(1) << 25;     // stack pushes of existing objects + items
constexpr int kMaxDepth = 256;                   // container nesting
constexpr size_t kMaxDims = 64;
constexpr size_t kMaxGlobalName = 256;

enum class Kind : uint8_t {
  kNone,
  kBool,
  kInt,
  kBigInt,
  kFloat,
  kStr,
  kTuple,
  kList,
  kDict,
  kGlobal,
  kStorage,
  kTensor
};

enum class Global : uint8_t {
  kOrderedDict,
  kRebuildTensorV2,
  kRebuildTensor,
  kRebuildParameter,
  kStorageType,
  kDtype,
  kSize,
  kRestoreTypeTag  ///< torch.jit._pickle.restore_type_tag(obj, type_str): identity
};

struct Obj;

/// Rarely used, heavy members kept out of line so scalars stay small.
struct Heavy {
  StorageRef storage;
  at::Tensor tensor;
  c10::IValue value;  ///< cached conversion of a container
};

struct Obj {
  Kind kind{Kind::kNone};
  uint8_t state{0};  ///< conversion: 0 not started, 1 in progress, 2 done (value cached)
  Global global{Global::kOrderedDict};
  at::ScalarType dtype{at::kFloat};
  size_t pos{0};  ///< absolute offset of the opcode that created the object
  bool b{false};
  int64_t i{0};
  double d{0};
  std::string s;            ///< kStr; kGlobal: "module.name"
  std::vector<Obj*> items;  ///< kTuple, kList; kDict: key, value, key, value, ...
  std::unique_ptr<Heavy> heavy;

  Heavy& h() {
    if (!heavy) heavy = std::make_unique<Heavy>();
    return *heavy;
  }
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kBigInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kStr:
      return "str";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kGlobal:
      return "global";
    case Kind::kStorage:
      return "storage";
    case Kind::kTensor:
      return "tensor";
  }
  return "?";
}

/// Printable, bounded rendering of a name taken from the file.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 120)) out += (c >= 32 && c < 127) ? c : '?';
  if (s.size() > 120) out += "...";
  return out;
}

struct StorageTypeName {
  const char* name;
  at::ScalarType dtype;
};
const StorageTypeName kStorageTypes[] = {
    {"FloatStorage", at::kFloat},   {"HalfStorage", at::kHalf}, {"BFloat16Storage", at::kBFloat16},
    {"DoubleStorage", at::kDouble}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort},   {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
    {"BoolStorage", at::kBool}};
const StorageTypeName kDtypes[] = {
    {"float32", at::kFloat}, {"float", at::kFloat},       {"float16", at::kHalf},
    {"half", at::kHalf},     {"bfloat16", at::kBFloat16}, {"float64", at::kDouble},
    {"double", at::kDouble}, {"int64", at::kLong},        {"long", at::kLong},
    {"int32", at::kInt},     {"int", at::kInt},           {"int16", at::kShort},
    {"short", at::kShort},   {"int8", at::kChar},         {"uint8", at::kByte},
    {"bool", at::kBool}};

class Unpickler {
 public:
  Unpickler(const Source& src, const PersistentLoader& loader) : src_(src), loader_(loader) {}

  c10::IValue run(size_t* consumed) {
    Obj* result = interpret();
    if (consumed) *consumed = pos_;
    return convert(result, 0);
  }

 private:
  [[noreturn]] void fail(size_t pos, const std::string& what) const {
    throw InputError(src_.where + " byte " + std::to_string(src_.base_offset + pos) + ": " + what);
  }

  // ---- bounds-checked reading ----
  size_t remaining() const { return src_.size - pos_; }
  const uint8_t* take(uint64_t n, const char* what) {
    if (n > remaining()) {
      fail(op_pos_, std::string("truncated pickle: ") + what + " needs " + std::to_string(n) +
                        " bytes, " + std::to_string(remaining()) + " left");
    }
    const uint8_t* p = src_.data + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  uint8_t u8() { return *take(1, "opcode argument"); }
  uint64_t le(int n) {
    const uint8_t* p = take(static_cast<uint64_t>(n), "integer");
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
    return v;
  }
  std::string line() {
    const size_t limit = std::min(remaining(), kMaxGlobalName + 1);
    const void* nl = std::memchr(src_.data + pos_, '\n', limit);
    if (!nl) {
      fail(op_pos_, limit > kMaxGlobalName ? "GLOBAL name too long" : "truncated GLOBAL name");
    }
    const size_t n = static_cast<const uint8_t*>(nl) - (src_.data + pos_);
    std::string s(reinterpret_cast<const char*>(src_.data + pos_), n);
    pos_ += n + 1;
    return s;
  }

  // ---- objects and the stack ----
  Obj* make(Kind kind) {
    if (arena_.size() >= kMaxObjects) fail(op_pos_, "pickle creates too many objects");
    arena_.push_back(std::make_unique<Obj>());
    Obj* o = arena_.back().get();
    o->kind = kind;
    o->pos = op_pos_;
    return o;
  }
  void count_ref() {
    if (++refs_ > kMaxRefs) fail(op_pos_, "pickle too large (too many references)");
  }
  void push(Obj* o) {
    count_ref();
    stack_.push_back(o);
  }
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  Obj* pop() {
    if (stack_.size() <= fence()) fail(op_pos_, "pickle stack underflow");
    Obj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj* top() {
    if (stack_.size() <= fence()) fail(op_pos_, "pickle stack underflow");
    return stack_.back();
  }
  std::vector<Obj*> pop_mark() {
    if (marks_.empty()) fail(op_pos_, "MARK expected but none is set");
    const size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) fail(op_pos_, "corrupt MARK");
    std::vector<Obj*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Obj* expect(Obj* o, Kind kind, const char* what) {
    if (o->kind != kind) {
      fail(op_pos_,
           std::string(what) + " must be a " + kind_name(kind) + ", got a " + kind_name(o->kind));
    }
    return o;
  }
  void memo_put(uint64_t key) {
    if (memo_.size() >= kMaxObjects) fail(op_pos_, "too many memo entries");
    memo_[key] = top();
  }
  Obj* memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail(op_pos_, "memo key " + std::to_string(key) + " is not defined");
    return it->second;
  }

  Obj* make_int(int64_t v) {
    Obj* o = make(Kind::kInt);
    o->i = v;
    return o;
  }
  Obj* make_str(uint64_t n, const char* what) {
    const uint8_t* p = take(n, what);
    Obj* o = make(Kind::kStr);
    o->s.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    return o;
  }
  Obj* make_long(uint64_t n) {
    const uint8_t* p = take(n, "LONG");
    if (n == 0) return make_int(0);
    const bool negative = (p[n - 1] & 0x80) != 0;
    // Fits in int64 when every byte above the low 8 is sign extension.
    bool fits = true;
    if (n > 8) {
      const uint8_t fill = (p[7] & 0x80) ? 0xFF : 0x00;
      for (uint64_t k = 8; k < n && fits; ++k) fits = p[k] == fill;
    }
    if (fits) {
      const uint64_t m = std::min<uint64_t>(n, 8);
      uint64_t v = 0;
      for (uint64_t k = m; k-- > 0;) v = (v << 8) | p[k];
      if (m < 8 && negative) v |= ~uint64_t(0) << (8 * m);
      return make_int(static_cast<int64_t>(v));
    }
    double d = 0;
    for (uint64_t k = n; k-- > 0;) d = d * 256.0 + p[k];
    if (negative) d -= std::ldexp(1.0, static_cast<int>(std::min<uint64_t>(8 * n, 4096)));
    Obj* o = make(Kind::kBigInt);
    o->d = d;
    return o;
  }

  Obj* resolve_global(const std::string& module, const std::string& name) {
    Obj* o = make(Kind::kGlobal);
    o->s = module + "." + name;
    if (module == "collections" && name == "OrderedDict") {
      o->global = Global::kOrderedDict;
      return o;
    }
    if (module == "torch._utils") {
      if (name == "_rebuild_tensor_v2") {
        o->global = Global::kRebuildTensorV2;
        return o;
      }
      if (name == "_rebuild_tensor") {
        o->global = Global::kRebuildTensor;
        return o;
      }
      if (name == "_rebuild_parameter") {
        o->global = Global::kRebuildParameter;
        return o;
      }
    }
    if (module == "torch") {
      for (const auto& t : kStorageTypes) {
        if (name == t.name) {
          o->global = Global::kStorageType;
          o->dtype = t.dtype;
          return o;
        }
      }
      for (const auto& t : kDtypes) {
        if (name == t.name) {
          o->global = Global::kDtype;
          o->dtype = t.dtype;
          return o;
        }
      }
      if (name == "Size") {
        o->global = Global::kSize;
        return o;
      }
    }
    if (module == "torch.jit._pickle" && name == "restore_type_tag") {
      // Written by LibTorch's pickle_save around typed dicts and lists; only re-attaches a
      // TorchScript type annotation, so it is read as the identity.
      o->global = Global::kRestoreTypeTag;
      return o;
    }
    fail(op_pos_, "global '" + printable(o->s) + "' is not allowed in a checkpoint");
  }

  static bool is_sequence(const Obj* o) {
    return o->kind == Kind::kTuple || o->kind == Kind::kList;
  }

  std::vector<int64_t> int_sequence(Obj* o, const char* what) {
    if (!is_sequence(o)) fail(op_pos_, std::string(what) + " must be a tuple of ints");
    if (o->items.size() > kMaxDims) fail(op_pos_, std::string(what) + " has too many dimensions");
    std::vector<int64_t> v;
    for (Obj* x : o->items) {
      if (x->kind != Kind::kInt) fail(op_pos_, std::string(what) + " must be a tuple of ints");
      v.push_back(x->i);
    }
    return v;
  }

  Obj* rebuild_tensor(Obj* storage_obj, Obj* offset_obj, Obj* size_obj, Obj* stride_obj) {
    expect(storage_obj, Kind::kStorage, "tensor storage");
    expect(offset_obj, Kind::kInt, "tensor storage offset");
    const StorageRef& ref = storage_obj->h().storage;
    const std::vector<int64_t> size = int_sequence(size_obj, "tensor size");
    const std::vector<int64_t> stride = int_sequence(stride_obj, "tensor stride");
    if (size.size() != stride.size()) fail(op_pos_, "tensor size and stride differ in length");
    const int64_t offset = offset_obj->i;
    if (offset < 0) fail(op_pos_, "negative tensor storage offset");
    const auto elsize = static_cast<int64_t>(element_size(ref.dtype));
    const int64_t available = ref.nbytes / elsize;
    int64_t numel = 1, nbytes = 0, last = offset;
    for (size_t k = 0; k < size.size(); ++k) {
      if (size[k] < 0) fail(op_pos_, "negative tensor size");
      if (stride[k] < 0) fail(op_pos_, "negative tensor stride");
      if (mul_overflows(numel, size[k], &numel)) fail(op_pos_, "tensor size overflows");
    }
    if (mul_overflows(numel, elsize, &nbytes)) fail(op_pos_, "tensor size overflows");
    Obj* o = make(Kind::kTensor);
    const auto options = at::TensorOptions().dtype(ref.dtype);
    if (numel == 0) {
      if (offset > available) fail(op_pos_, "tensor storage offset beyond its storage");
      o->h().tensor = at::empty(size, options);
      return o;
    }
    for (size_t k = 0; k < size.size(); ++k) {
      int64_t span = 0;
      if (mul_overflows(size[k] - 1, stride[k], &span) || add_overflows(last, span, &last)) {
        fail(op_pos_, "tensor extent overflows");
      }
    }
    if (last >= available) {
      fail(op_pos_, "tensor of " + std::to_string(numel) + " elements (last index " +
                        std::to_string(last) + ") exceeds its storage of " +
                        std::to_string(available) + " elements");
    }
    if (ref.byte_offset % elsize != 0) fail(op_pos_, "misaligned storage view");
    int64_t first = 0;
    if (add_overflows(ref.byte_offset / elsize, offset, &first)) fail(op_pos_, "offset overflows");
    try {
      at::Tensor t = at::empty({0}, options);
      t.set_(ref.storage, first, size, stride);
      o->h().tensor = t;
    } catch (const c10::Error& e) {
      fail(op_pos_, std::string("cannot rebuild tensor: ") + e.what_without_backtrace());
    }
    return o;
  }

  Obj* call(Obj* fn, Obj* args, bool newobj) {
    expect(fn, Kind::kGlobal, "REDUCE callable");
    expect(args, Kind::kTuple, "REDUCE arguments");
    const auto& a = args->items;
    if (fn->global == Global::kOrderedDict) {
      Obj* d = make(Kind::kDict);
      if (a.empty()) return d;
      if (a.size() == 1 && is_sequence(a[0])) {
        for (Obj* pair : a[0]->items) {
          if (!is_sequence(pair) || pair->items.size() != 2) {
            fail(op_pos_, "OrderedDict items must be pairs");
          }
          count_ref();
          count_ref();
          d->items.push_back(pair->items[0]);
          d->items.push_back(pair->items[1]);
        }
        return d;
      }
      fail(op_pos_, "unsupported OrderedDict arguments");
    }
    if (newobj) fail(op_pos_, "NEWOBJ of '" + printable(fn->s) + "' is not supported");
    switch (fn->global) {
      case Global::kRebuildTensorV2:
        if (a.size() != 6 && a.size() != 7)
          fail(op_pos_, "_rebuild_tensor_v2 takes 6 or 7 arguments");
        return rebuild_tensor(a[0], a[1], a[2], a[3]);
      case Global::kRebuildTensor:
        if (a.size() != 4) fail(op_pos_, "_rebuild_tensor takes 4 arguments");
        return rebuild_tensor(a[0], a[1], a[2], a[3]);
      case Global::kRebuildParameter:
        if (a.size() != 3) fail(op_pos_, "_rebuild_parameter takes 3 arguments");
        return expect(a[0], Kind::kTensor, "parameter data");
      case Global::kSize: {
        if (a.size() != 1) fail(op_pos_, "torch.Size takes 1 argument");
        int_sequence(a[0], "torch.Size");
        Obj* t = make(Kind::kTuple);
        t->items = a[0]->items;
        return t;
      }
      case Global::kRestoreTypeTag:
        if (a.size() != 2) fail(op_pos_, "restore_type_tag takes 2 arguments");
        return a[0];
      default:
        fail(op_pos_, "calling '" + printable(fn->s) + "' is not supported");
    }
  }

  Obj* persistent_load(Obj* pid) {
    if (pid->kind != Kind::kTuple || pid->items.empty() || pid->items[0]->kind != Kind::kStr) {
      fail(op_pos_, "persistent id must be a tuple starting with a string");
    }
    const auto& p = pid->items;
    if (p[0]->s != "storage") {
      fail(op_pos_, "unsupported persistent id type '" + printable(p[0]->s) + "'");
    }
    if (p.size() != 5 && p.size() != 6)
      fail(op_pos_, "storage persistent id must have 5 or 6 fields");
    if (p[1]->kind != Kind::kGlobal ||
        (p[1]->global != Global::kStorageType && p[1]->global != Global::kDtype)) {
      fail(op_pos_, "persistent id: unknown storage type");
    }
    PersistentId id;
    id.dtype = p[1]->dtype;
    id.key = expect(p[2], Kind::kStr, "storage key")->s;
    id.location = expect(p[3], Kind::kStr, "storage location")->s;
    id.numel = expect(p[4], Kind::kInt, "storage size")->i;
    if (id.numel < 0) fail(op_pos_, "negative storage size");
    if (p.size() == 6 && p[5]->kind != Kind::kNone) {
      Obj* v = p[5];
      if (v->kind != Kind::kTuple || v->items.size() != 3) {
        fail(op_pos_, "storage view metadata must be (key, offset, size)");
      }
      id.has_view = true;
      id.view_key = expect(v->items[0], Kind::kStr, "view key")->s;
      id.view_offset = expect(v->items[1], Kind::kInt, "view offset")->i;
      id.view_numel = expect(v->items[2], Kind::kInt, "view size")->i;
      if (id.view_offset < 0 || id.view_numel < 0) fail(op_pos_, "negative storage view");
    }
    StorageRef ref = loader_(id, src_.base_offset + op_pos_);
    const auto elsize = static_cast<int64_t>(element_size(ref.dtype));
    if (elsize == 0 || ref.byte_offset < 0 || ref.nbytes < 0 ||
        static_cast<uint64_t>(ref.byte_offset) + static_cast<uint64_t>(ref.nbytes) >
            ref.storage.nbytes()) {
      fail(op_pos_, "internal: invalid storage for key '" + printable(id.key) + "'");
    }
    Obj* o = make(Kind::kStorage);
    o->h().storage = std::move(ref);
    return o;
  }

  Obj* interpret() {
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = *take(1, "opcode");
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t proto = u8();
          if (proto > 5) fail(op_pos_, "unsupported pickle protocol " + std::to_string(proto));
          break;
        }
        case 0x95: {  // FRAME: framing is only a hint for buffered readers
          const uint64_t n = le(8);
          if (n > remaining()) fail(op_pos_, "truncated pickle: FRAME longer than the data");
          break;
        }
        case '.': {  // STOP
          if (stack_.empty()) fail(op_pos_, "STOP on an empty stack");
          return stack_.back();
        }
        case '(':  // MARK
          if (marks_.size() >= kMaxObjects) fail(op_pos_, "too many MARKs");
          marks_.push_back(stack_.size());
          break;
        case '0':  // POP
          if (stack_.size() > fence()) {
            stack_.pop_back();
          } else {
            pop_mark();
          }
          break;
        case '1':  // POP_MARK
          pop_mark();
          break;
        case '2':  // DUP
          push(top());
          break;
        case '}':  // EMPTY_DICT
          push(make(Kind::kDict));
          break;
        case ']':  // EMPTY_LIST
          push(make(Kind::kList));
          break;
        case ')':  // EMPTY_TUPLE
          push(make(Kind::kTuple));
          break;
        case 'd': {  // DICT
          std::vector<Obj*> items = pop_mark();
          if (items.size() % 2) fail(op_pos_, "DICT with an odd number of items");
          Obj* d = make(Kind::kDict);
          d->items = std::move(items);
          push(d);
          break;
        }
        case 'l':    // LIST
        case 't': {  // TUPLE
          std::vector<Obj*> items = pop_mark();
          Obj* o = make(op == 'l' ? Kind::kList : Kind::kTuple);
          o->items = std::move(items);
          push(o);
          break;
        }
        case 0x85:    // TUPLE1
        case 0x86:    // TUPLE2
        case 0x87: {  // TUPLE3
          const size_t n = op - 0x84;
          std::vector<Obj*> items(n);
          for (size_t k = n; k-- > 0;) items[k] = pop();
          Obj* o = make(Kind::kTuple);
          o->items = std::move(items);
          push(o);
          break;
        }
        case 'a': {  // APPEND
          Obj* v = pop();
          Obj* list = expect(top(), Kind::kList, "APPEND target");
          count_ref();
          list->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          std::vector<Obj*> items = pop_mark();
          Obj* list = expect(top(), Kind::kList, "APPENDS target");
          for (Obj* v : items) {
            count_ref();
            list->items.push_back(v);
          }
          break;
        }
        case 's': {  // SETITEM
          Obj* v = pop();
          Obj* k = pop();
          Obj* d = expect(top(), Kind::kDict, "SETITEM target");
          count_ref();
          d->items.push_back(k);
          d->items.push_back(v);
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<Obj*> items = pop_mark();
          if (items.size() % 2) fail(op_pos_, "SETITEMS with an odd number of items");
          Obj* d = expect(top(), Kind::kDict, "SETITEMS target");
          for (Obj* v : items) {
            count_ref();
            d->items.push_back(v);
          }
          break;
        }
        case 'X':  // BINUNICODE
        case 'B':  // BINBYTES
          push(make_str(le(4), "string"));
          break;
        case 0x8c:  // SHORT_BINUNICODE
        case 'U':   // SHORT_BINSTRING
        case 'C':   // SHORT_BINBYTES
          push(make_str(u8(), "string"));
          break;
        case 0x8d:  // BINUNICODE8
        case 0x8e:  // BINBYTES8
          push(make_str(le(8), "string"));
          break;
        case 'T': {  // BINSTRING (signed 32-bit length)
          const auto n = static_cast<int32_t>(le(4));
          if (n < 0) fail(op_pos_, "negative string length");
          push(make_str(static_cast<uint64_t>(n), "string"));
          break;
        }
        case 'J':  // BININT
          push(make_int(static_cast<int32_t>(le(4))));
          break;
        case 'K':  // BININT1
          push(make_int(u8()));
          break;
        case 'M':  // BININT2
          push(make_int(static_cast<int64_t>(le(2))));
          break;
        case 0x8a:  // LONG1
          push(make_long(u8()));
          break;
        case 0x8b: {  // LONG4
          const auto n = static_cast<int32_t>(le(4));
          if (n < 0) fail(op_pos_, "negative LONG4 length");
          push(make_long(static_cast<uint64_t>(n)));
          break;
        }
        case 'G': {  // BINFLOAT (big-endian IEEE 754 double)
          const uint8_t* p = take(8, "float");
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
          Obj* o = make(Kind::kFloat);
          std::memcpy(&o->d, &bits, sizeof(double));
          push(o);
          break;
        }
        case 0x88:    // NEWTRUE
        case 0x89: {  // NEWFALSE
          Obj* o = make(Kind::kBool);
          o->b = op == 0x88;
          push(o);
          break;
        }
        case 'N':  // NONE
          push(make(Kind::kNone));
          break;
        case 'q':  // BINPUT
          memo_put(u8());
          break;
        case 'r':  // LONG_BINPUT
          memo_put(le(4));
          break;
        case 0x94:  // MEMOIZE
          memo_put(memo_.size());
          break;
        case 'h':  // BINGET
          push(memo_get(u8()));
          break;
        case 'j':  // LONG_BINGET
          push(memo_get(le(4)));
          break;
        case 'c': {  // GLOBAL
          const std::string module = line();
          const std::string name = line();
          push(resolve_global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Obj* name = expect(pop(), Kind::kStr, "STACK_GLOBAL name");
          Obj* module = expect(pop(), Kind::kStr, "STACK_GLOBAL module");
          push(resolve_global(module->s, name->s));
          break;
        }
        case 'R':     // REDUCE
        case 0x81: {  // NEWOBJ
          Obj* args = pop();
          Obj* fn = pop();
          push(call(fn, args, op == 0x81));
          break;
        }
        case 'b': {  // BUILD: object state (OrderedDict._metadata, tensor attributes) is dropped
          pop();
          Obj* target = top();
          if (target->kind != Kind::kDict && target->kind != Kind::kTensor) {
            fail(op_pos_,
                 std::string("BUILD on a ") + kind_name(target->kind) + " is not supported");
          }
          break;
        }
        case 'Q':  // BINPERSID
          push(persistent_load(pop()));
          break;
        default: {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "0x%02x", op);
          fail(op_pos_, std::string("unsupported pickle opcode ") + hex);
        }
      }
    }
  }

  // ---- conversion to IValue ----
  c10::IValue convert(Obj* o, int depth) {
    if (depth > kMaxDepth) fail(o->pos, "objects nested too deeply");
    switch (o->kind) {
      case Kind::kNone:
        return c10::IValue();
      case Kind::kBool:
        return c10::IValue(o->b);
      case Kind::kInt:
        return c10::IValue(o->i);
      case Kind::kBigInt:
      case Kind::kFloat:
        return c10::IValue(o->d);
      case Kind::kStr:
        return c10::IValue(o->s);
      case Kind::kTensor:
        return c10::IValue(o->h().tensor);
      case Kind::kGlobal:
        if (o->global == Global::kDtype) return c10::IValue(o->dtype);
        fail(o->pos, "global '" + printable(o->s) + "' cannot be used as a value");
      default:
        break;
    }
    if (o->state == 2) return o->h().value;
    if (o->state == 1) fail(o->pos, "recursive container");
    o->state = 1;
    c10::IValue v;
    switch (o->kind) {
      case Kind::kTuple: {
        std::vector<c10::IValue> items;
        items.reserve(o->items.size());
        for (Obj* x : o->items) items.push_back(convert(x, depth + 1));
        v = c10::ivalue::Tuple::create(std::move(items));
        break;
      }
      case Kind::kList: {
        c10::impl::GenericList list(c10::AnyType::get());
        list.reserve(o->items.size());
        for (Obj* x : o->items) list.push_back(convert(x, depth + 1));
        v = list;
        break;
      }
      case Kind::kDict: {
        c10::impl::GenericDict dict(c10::AnyType::get(), c10::AnyType::get());
        for (size_t k = 0; k + 1 < o->items.size(); k += 2) {
          c10::IValue key = convert(o->items[k], depth + 1);
          c10::IValue value = convert(o->items[k + 1], depth + 1);
          try {
            dict.insert_or_assign(std::move(key), std::move(value));
          } catch (const std::exception&) {
            fail(o->items[k]->pos,
                 std::string("unhashable dict key of type ") + kind_name(o->items[k]->kind));
          }
        }
        v = dict;
        break;
      }
      case Kind::kStorage: {  // a bare storage: its elements as a 1-D tensor
        const StorageRef& ref = o->h().storage;
        const auto elsize = static_cast<int64_t>(element_size(ref.dtype));
        if (ref.byte_offset % elsize != 0) fail(o->pos, "misaligned storage view");
        at::Tensor t = at::empty({0}, at::TensorOptions().dtype(ref.dtype));
        t.set_(ref.storage, ref.byte_offset / elsize, {ref.nbytes / elsize}, {1});
        v = t;
        break;
      }
      default:
        fail(o->pos, "internal: unexpected object");
    }
    o->h().value = v;
    o->state = 2;
    return v;
  }

  const Source& src_;
  const PersistentLoader& loader_;
  size_t pos_{0};
  size_t op_pos_{0};
  size_t refs_{0};
  std::vector<std::unique_ptr<Obj>> arena_;  // owns every object: flat teardown, cycles are safe
  std::vector<Obj*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Obj*> memo_;
};

}  // namespace

c10::IValue unpickle(const Source& source, const PersistentLoader& loader, size_t* consumed) {
  Unpickler unpickler(source, loader);
  return unpickler.run(consumed);
}

}  // namespace pickle
}  // namespace copaint
