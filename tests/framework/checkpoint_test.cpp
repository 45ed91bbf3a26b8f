// Tests of the checkpoint readers (framework/checkpoint/checkpoint.h): both torch.save formats
// against the golden expected.json, storage sharing of views, legacy == zip on a real state dict,
// load_state_dict unwrapping, safetensors, and hostile input (crafted pickles, truncations,
// byte flips) that must end in InputError, never a crash.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "framework/nn/denoisers.h"
#include "framework/nn/unet.h"
#include "tests/test_paths.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return std::string(COPAINT_TEST_FIXTURES_DIR) + "/" + name;
}

#define REQUIRE_FILE(path) ASSERT_TRUE(fs::exists(path)) << "committed fixture missing: " << (path)

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A scratch folder per test, removed afterwards.
class Scratch {
 public:
  Scratch() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("copaint_ckpt_" + std::to_string(::getpid()) + "_" + info->name());
    fs::create_directories(dir_);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

// ---- a tiny pickle writer for crafted inputs ----
struct Pickle {
  std::string b;
  Pickle& raw(const std::string& s) {
    b += s;
    return *this;
  }
  Pickle& op(int c) {
    b += static_cast<char>(c);
    return *this;
  }
  Pickle& proto() { return op(0x80).op(2); }
  Pickle& u32(uint32_t v) {
    for (int k = 0; k < 4; ++k) op(static_cast<int>((v >> (8 * k)) & 0xFF));
    return *this;
  }
  Pickle& str(const std::string& s) {
    op('X').u32(static_cast<uint32_t>(s.size()));
    return raw(s);
  }
  Pickle& i1(int v) { return op('K').op(v); }
  Pickle& i4(int32_t v) { return op('J').u32(static_cast<uint32_t>(v)); }
  Pickle& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  Pickle& stop() { return op('.'); }
  /// _rebuild_tensor_v2(storage(key, numel, type), offset, size, stride, False, OrderedDict())
  Pickle& tensor(const std::string& key, int32_t numel, int32_t offset,
                 const std::vector<int32_t>& size, const std::vector<int32_t>& stride,
                 const std::string& type = "FloatStorage", bool legacy = true,
                 const std::string& location = "cpu") {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", type).str(key).str(location).i4(numel);
    if (legacy) op('N');
    op('t').op('Q').i4(offset);
    op('(');
    for (int32_t s : size) i4(s);
    op('t').op('(');
    for (int32_t s : stride) i4(s);
    op('t').op(0x89).global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
    return *this;
  }
};

/// A legacy-format file: magic, protocol 1001, sys_info, `object`, storage keys, raw storages.
std::string legacy_file(const std::string& object,
                        const std::vector<std::pair<std::string, std::string>>& storages = {},
                        const std::vector<int64_t>& numels = {}) {
  std::string out;
  const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                           0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
  out.append(reinterpret_cast<const char*>(magic), sizeof(magic));
  out += Pickle().proto().op('M').op(1001 & 0xFF).op(1001 >> 8).stop().b;
  out += Pickle().proto().op('}').str("little_endian").op(0x88).op('s').stop().b;
  out += object;
  Pickle keys;
  keys.proto().op(']').op('(');
  for (const auto& s : storages) keys.str(s.first);
  keys.op('e').stop();
  out += keys.b;
  for (size_t k = 0; k < storages.size(); ++k) {
    const int64_t n =
        k < numels.size() ? numels[k] : static_cast<int64_t>(storages[k].second.size() / 4);
    for (int j = 0; j < 8; ++j)
      out += static_cast<char>((static_cast<uint64_t>(n) >> (8 * j)) & 0xFF);
    out += storages[k].second;
  }
  return out;
}

std::string floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

/// A zip-format file written with libtorch's own writer.
void write_zip(const std::string& path, const std::string& pkl,
               const std::vector<std::pair<std::string, std::string>>& storages = {}) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pkl.data(), pkl.size());
  for (const auto& [key, bytes] : storages)
    writer.writeRecord("data/" + key, bytes.data(), bytes.size());
  writer.writeEndOfFile();
}

/// Expects `fn` to throw InputError whose message contains every string in `parts`.
template <class Fn>
void expect_input_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no InputError thrown";
  } catch (const InputError& e) {
    for (const auto& p : parts) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
    }
  }
}

const c10::IValue& get(const c10::impl::GenericDict& d, const std::string& key) {
  auto it = d.find(c10::IValue(key));
  if (it == d.end()) throw std::runtime_error("missing key " + key);
  return it->value();
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kLong:
      return "int64";
    case at::kBool:
      return "bool";
    case at::kDouble:
      return "float64";
    default:
      return "other";
  }
}

// ---- golden edge cases, both formats ----

class EdgeCheckpoint : public ::testing::TestWithParam<std::string> {};

TEST_P(EdgeCheckpoint, ReproducesExpectedJson) {
  const std::string path = fixture("checkpoint/" + GetParam());
  const std::string json_path = fixture("checkpoint/expected.json");
  REQUIRE_FILE(path);
  REQUIRE_FILE(json_path);
  const auto expected = nlohmann::json::parse(read_bytes(json_path));

  const c10::IValue root = read_torch_file(path);
  ASSERT_TRUE(root.isGenericDict());
  const auto top = root.toGenericDict();
  std::vector<std::string> keys;
  for (const auto& e : top) keys.push_back(e.key().toStringRef());
  EXPECT_EQ(keys, (std::vector<std::string>{"model", "step", "name", "lr", "ema", "none"}));

  const auto model = get(top, "model").toGenericDict();
  EXPECT_EQ(model.size(), expected["tensors"].size());  // _metadata is dropped
  for (const auto& [name, want] : expected["tensors"].items()) {
    SCOPED_TRACE(name);
    ASSERT_EQ(name.rfind("model/", 0), 0u);
    const at::Tensor t = get(model, name.substr(6)).toTensor();
    EXPECT_EQ(dtype_name(t.scalar_type()), want["dtype"].get<std::string>());
    EXPECT_EQ(t.sizes().vec(), want["shape"].get<std::vector<int64_t>>());
    EXPECT_TRUE(t.device().is_cpu());
    const at::Tensor flat = t.to(at::kDouble).contiguous().reshape({-1});
    const double tol = 1e-9 * (1.0 + std::abs(want["sum"].get<double>()));
    EXPECT_NEAR(flat.sum().item<double>(), want["sum"].get<double>(), tol);
    EXPECT_DOUBLE_EQ(flat[0].item<double>(), want["first"].get<double>());
    EXPECT_DOUBLE_EQ(flat[-1].item<double>(), want["last"].get<double>());
  }

  const auto& scalars = expected["scalars"];
  EXPECT_EQ(get(top, "step").toInt(), scalars["step"].get<int64_t>());
  EXPECT_EQ(get(top, "name").toStringRef(), scalars["name"].get<std::string>());
  EXPECT_DOUBLE_EQ(get(top, "lr").toDouble(), scalars["lr"].get<double>());
  const auto ema = get(top, "ema").toList();
  ASSERT_EQ(ema.size(), scalars["ema"].size());
  EXPECT_DOUBLE_EQ(ema.get(0).toDouble(), scalars["ema"][0].get<double>());
  EXPECT_TRUE(get(top, "none").isNone());
  EXPECT_TRUE(scalars["none"].is_null());
}

TEST_P(EdgeCheckpoint, ViewsShareStorage) {
  const std::string path = fixture("checkpoint/" + GetParam());
  REQUIRE_FILE(path);
  const auto model = read_torch_file(path).toGenericDict().at(c10::IValue("model")).toGenericDict();
  at::Tensor base = get(model, "base").toTensor();
  const at::Tensor row = get(model, "row_view").toTensor();
  const at::Tensor tr = get(model, "transposed").toTensor();
  const at::Tensor conv = get(model, "conv.weight").toTensor();
  EXPECT_TRUE(base.storage().is_alias_of(row.storage()));
  EXPECT_TRUE(base.storage().is_alias_of(tr.storage()));
  EXPECT_FALSE(base.storage().is_alias_of(conv.storage()));
  EXPECT_EQ(row.storage_offset(), 10);
  EXPECT_EQ(row.strides().vec(), (std::vector<int64_t>{1}));
  EXPECT_EQ(tr.storage_offset(), 0);
  EXPECT_EQ(tr.strides().vec(), (std::vector<int64_t>{1, 5}));
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_EQ(base.strides().vec(), (std::vector<int64_t>{5, 1}));
  EXPECT_TRUE(at::equal(tr, base.t()));
  EXPECT_TRUE(at::equal(row, base.reshape({-1}).slice(0, 10, 15)));
  base.index_put_({1, 2}, 42.0f);  // element 7 of the storage, in row and column views
  EXPECT_EQ(tr.index({2, 1}).item<float>(), 42.0f);
  base.index_put_({2, 1}, -7.0f);  // element 11 = row_view[1]
  EXPECT_EQ(row.index({1}).item<float>(), -7.0f);
}

TEST_P(EdgeCheckpoint, LoadStateDictUnwrapsModel) {
  const std::string path = fixture("checkpoint/" + GetParam());
  REQUIRE_FILE(path);
  const StateDict sd = load_state_dict(path);
  std::vector<std::string> names;
  for (const auto& e : sd) names.push_back(e.first);
  EXPECT_EQ(names, (std::vector<std::string>{"conv.weight", "conv.bias", "half", "bf16", "steps",
                                             "flags", "scalar", "row_view", "transposed", "base"}));
  const auto model = read_torch_file(path).toGenericDict().at(c10::IValue("model")).toGenericDict();
  for (const auto& [name, t] : sd) EXPECT_TRUE(at::equal(t, get(model, name).toTensor())) << name;
}

INSTANTIATE_TEST_SUITE_P(Formats, EdgeCheckpoint,
                         ::testing::Values("edge_zip.pt", "edge_legacy.pt"), [](const auto& info) {
                           return info.param == "edge_zip.pt" ? "Zip" : "Legacy";
                         });

TEST(Checkpoint, DetectsFormatByContent) {
  REQUIRE_FILE(fixture("checkpoint/edge_zip.pt"));
  EXPECT_EQ(checkpoint_format(fixture("checkpoint/edge_zip.pt")), "zip");
  EXPECT_EQ(checkpoint_format(fixture("checkpoint/edge_legacy.pt")), "legacy");
  Scratch dir;
  write_safetensors(dir.path("a.bin"), {{"x", at::ones({2})}});
  EXPECT_EQ(checkpoint_format(dir.path("a.bin")), "safetensors");
  expect_input_error([&] { checkpoint_format(fixture("checkpoint/expected.json")); },
                     {"expected.json", "not a torch.save"});
  expect_input_error([&] { checkpoint_format(dir.path("missing.pt")); }, {"missing.pt"});
  expect_input_error([&] { read_torch_file(dir.path("")); }, {"not a regular file"});
}

TEST(Checkpoint, LegacyMatchesZipStateDict) {
  const std::string legacy = fixture("checkpoint/adm_tiny_cond_legacy.pt");
  const std::string zip = fixture("unet/adm_tiny_cond.pt");
  REQUIRE_FILE(legacy);
  REQUIRE_FILE(zip);
  EXPECT_EQ(checkpoint_format(legacy), "legacy");
  EXPECT_EQ(checkpoint_format(zip), "zip");
  const StateDict a = load_state_dict(legacy);
  const StateDict b = load_state_dict(zip);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_GT(a.size(), 100u);
  for (size_t k = 0; k < a.size(); ++k) {
    SCOPED_TRACE(a[k].first);
    EXPECT_EQ(a[k].first, b[k].first);
    EXPECT_EQ(a[k].second.scalar_type(), b[k].second.scalar_type());
    EXPECT_EQ(a[k].second.sizes(), b[k].second.sizes());
    EXPECT_TRUE(at::equal(a[k].second, b[k].second));
  }
}

// ---- load_state_dict nesting rules ----

TEST(Checkpoint, LoadStateDictNestingRules) {
  Scratch dir;
  // {"step": 3, "ema": {"w": tensor}} -> the sole tensor dict; "module." stripped.
  Pickle p1;
  p1.proto().op('}').op('(').str("step").i1(3).str("ema").op('}').op('(');
  p1.str("module.w").tensor("0", 2, 0, {2}, {1}).str("module.b").tensor("0", 2, 1, {1}, {1});
  p1.op('u').op('u').stop();
  write_bytes(dir.path("ema.pt"), legacy_file(p1.b, {{"0", floats({1.f, 2.f})}}));
  StateDict sd = load_state_dict(dir.path("ema.pt"));
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd[0].first, "w");
  EXPECT_EQ(sd[1].first, "b");
  EXPECT_EQ(sd[1].second.item<float>(), 2.f);

  // {"model": {...}, "ema": {...}} -> "model" wins; mixed prefixes are kept.
  Pickle p2;
  p2.proto().op('}').op('(').str("ema").op('}').str("e").tensor("0", 2, 0, {2}, {1}).op('s');
  p2.str("model").op('}').op('(').str("module.m").tensor("0", 2, 0, {1}, {1});
  p2.str("n").tensor("0", 2, 1, {1}, {1}).op('u').op('u').stop();
  write_bytes(dir.path("both.pt"), legacy_file(p2.b, {{"0", floats({1.f, 2.f})}}));
  sd = load_state_dict(dir.path("both.pt"));
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd[0].first, "module.m");
  EXPECT_EQ(sd[1].first, "n");

  // Two unnamed tensor dicts -> ambiguous.
  Pickle p3;
  p3.proto().op('}').op('(').str("a").op('}').str("x").tensor("0", 2, 0, {2}, {1}).op('s');
  p3.str("b").op('}').str("y").tensor("0", 2, 0, {2}, {1}).op('s').op('u').stop();
  write_bytes(dir.path("amb.pt"), legacy_file(p3.b, {{"0", floats({1.f, 2.f})}}));
  expect_input_error([&] { load_state_dict(dir.path("amb.pt")); }, {"amb.pt", "ambiguous", "a, b"});

  // No tensors at all.
  write_bytes(dir.path("none.pt"),
              legacy_file(Pickle().proto().op('}').str("k").i1(1).op('s').stop().b));
  expect_input_error([&] { load_state_dict(dir.path("none.pt")); }, {"none.pt", "no tensors"});

  // One dict shared under 1000 keys at each of 4 levels: the search must stay linear.
  Pickle wide;
  wide.proto().op('}').str("x").i1(1).op('s').op('q').op(0);
  for (int level = 1; level <= 3; ++level) {
    wide.op('}').op('(');
    for (int k = 0; k < 1000; ++k) wide.str("k" + std::to_string(k)).op('h').op(level - 1);
    wide.op('u').op('q').op(level);
  }
  wide.stop();
  write_bytes(dir.path("wide.pt"), legacy_file(wide.b));
  const auto start = std::chrono::steady_clock::now();
  expect_input_error([&] { load_state_dict(dir.path("wide.pt")); }, {"wide.pt", "no tensors"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
}

// ---- crafted hostile pickles ----

TEST(Checkpoint, RejectsUnknownGlobal) {
  Scratch dir;
  Pickle evil;
  evil.proto().global("os", "system").str("echo hacked").op(0x85).op('R').stop();
  write_bytes(dir.path("evil_legacy.pt"), legacy_file(evil.b));
  expect_input_error([&] { read_torch_file(dir.path("evil_legacy.pt")); },
                     {"evil_legacy.pt", "os.system", "byte 47:"});
  write_zip(dir.path("evil_zip.pt"), evil.b);
  expect_input_error([&] { read_torch_file(dir.path("evil_zip.pt")); },
                     {"evil_zip.pt", "data.pkl) byte 2:", "os.system"});
  // STACK_GLOBAL and whitelisted-module-but-other-name are rejected too.
  Pickle sg;
  sg.proto().str("builtins").str("eval").op(0x93).stop();
  write_zip(dir.path("sg.pt"), sg.b);
  expect_input_error([&] { read_torch_file(dir.path("sg.pt")); }, {"builtins.eval"});
  Pickle lf;
  lf.proto().global("torch.storage", "_load_from_bytes").stop();
  write_zip(dir.path("lf.pt"), lf.b);
  expect_input_error([&] { read_torch_file(dir.path("lf.pt")); },
                     {"torch.storage._load_from_bytes"});
}

TEST(Checkpoint, RejectsMalformedPickles) {
  Scratch dir;
  struct Case {
    std::string name;
    std::string pickle;
    std::string message;
  };
  std::string deep = Pickle().proto().b;
  for (int k = 0; k < 100000; ++k) deep += "]";
  for (int k = 0; k < 99999; ++k) deep += "a";
  deep += ".";
  const std::vector<Case> cases = {
      {"underflow", Pickle().proto().op('a').stop().b, "underflow"},
      {"memo_miss", Pickle().proto().op('h').op(7).stop().b, "memo key 7"},
      {"bad_opcode", Pickle().proto().op(0xff).b, "opcode 0xff"},
      {"long_string", Pickle().proto().op('X').u32(0x7fffffff).raw("ab").b, "truncated"},
      {"self_reference", Pickle().proto().op(']').op('q').op(0).op('h').op(0).op('a').stop().b,
       "recursive"},
      {"deep", deep, "nested too deeply"},
      {"huge_storage", Pickle().proto().tensor("0", 0x7fffffff, 0, {1}, {1}).stop().b,
       "larger than the rest"},
      {"negative_stride", Pickle().proto().tensor("0", 4, 0, {2}, {-1}).stop().b,
       "negative tensor stride"},
      {"negative_offset", Pickle().proto().tensor("0", 4, -1, {2}, {1}).stop().b,
       "negative tensor storage offset"},
      {"beyond_storage", Pickle().proto().tensor("0", 4, 1, {2, 2}, {2, 1}).stop().b,
       "exceeds its storage"},
      {"size_overflow",
       Pickle().proto().tensor("0", 4, 0, {0x7fffffff, 0x7fffffff, 0x7fffffff}, {1, 1, 1}).stop().b,
       "overflows"},
      {"storage_call", Pickle().proto().global("torch", "FloatStorage").op(')').op('R').stop().b,
       "calling 'torch.FloatStorage'"},
      {"build_on_list", Pickle().proto().op(']').op('}').op('b').stop().b, "BUILD on a list"},
      {"unhashable_key", Pickle().proto().op('}').op(']').i1(1).op('s').stop().b, "unhashable"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.path(c.name + ".pt");
    write_bytes(path, legacy_file(c.pickle, {{"0", floats({1.f, 2.f, 3.f, 4.f})}}));
    expect_input_error([&] { read_torch_file(path); }, {path, c.message});
  }
  // Storage data that disagrees with the pickle: wrong element count, missing data.
  const std::string one = Pickle().proto().tensor("0", 4, 0, {4}, {1}).stop().b;
  write_bytes(dir.path("count.pt"), legacy_file(one, {{"0", floats({1.f, 2.f, 3.f, 4.f})}}, {3}));
  expect_input_error([&] { read_torch_file(dir.path("count.pt")); },
                     {"count.pt", "3 elements in the data"});
  write_bytes(dir.path("nodata.pt"), legacy_file(one));
  expect_input_error([&] { read_torch_file(dir.path("nodata.pt")); }, {"nodata.pt", "has no data"});
  // Two storages that each fit in the rest of the file but together do not.
  std::vector<float> forty(40, 1.f);
  Pickle two;
  two.proto().op('(').tensor("0", 40, 0, {40}, {1}).tensor("1", 40, 0, {40}, {1}).op('t').stop();
  write_bytes(dir.path("two.pt"), legacy_file(two.b, {{"0", floats(forty)}}));
  expect_input_error([&] { read_torch_file(dir.path("two.pt")); },
                     {"two.pt", "storage '1' of 40 elements is larger than the rest"});
  // A pickle that ends without STOP.
  write_zip(dir.path("no_stop.pt"), Pickle().proto().op(']').b);
  expect_input_error([&] { read_torch_file(dir.path("no_stop.pt")); },
                     {"no_stop.pt (data.pkl) byte 3:", "truncated"});
  // Zip: record smaller than its storage, record missing.
  const std::string zpkl =
      Pickle().proto().tensor("0", 4, 0, {4}, {1}, "FloatStorage", false).stop().b;
  write_zip(dir.path("short.pt"), zpkl, {{"0", floats({1.f, 2.f})}});
  expect_input_error([&] { read_torch_file(dir.path("short.pt")); }, {"short.pt", "holds 8 bytes"});
  write_zip(dir.path("missing.pt"), zpkl);
  expect_input_error([&] { read_torch_file(dir.path("missing.pt")); }, {"missing.pt", "data/0"});
  // And a well-formed crafted zip loads, with a CUDA location mapped to the CPU.
  const std::string cuda_pkl =
      Pickle().proto().tensor("0", 4, 0, {4}, {1}, "FloatStorage", false, "cuda:0").stop().b;
  write_zip(dir.path("ok.pt"), cuda_pkl, {{"0", floats({1.f, 2.f, 3.f, 4.f})}});
  const at::Tensor t = read_torch_file(dir.path("ok.pt")).toTensor();
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_TRUE(at::equal(t, at::arange(1, 5, at::kFloat)));
}

TEST(Checkpoint, ReadsOtherPickleForms) {
  // Protocol 4 framing and memoization, bytes, big ints, tuple/None values, torch.Size, dtype.
  Scratch dir;
  Pickle p;
  p.op(0x80).op(4).op(0x95);
  for (int k = 0; k < 8; ++k) p.op(0);  // frame length (ignored)
  p.op('}').op(0x94).op('(');
  p.op(0x8c).op(3).raw("big").op(0x8a).op(9).raw(std::string(8, '\0')).op(1);  // 2**64
  p.op(0x8c).op(3).raw("neg").op(0x8a).op(2).op(0x00).op(0xff);                // -256
  p.op(0x8c).op(3).raw("byt").op('C').op(2).raw("\x01\x02");
  p.op(0x8c).op(3).raw("siz").global("torch", "Size").i1(2).i1(3).op(0x86).op(0x85).op('R');
  p.op(0x8c).op(3).raw("dty").global("torch", "bfloat16");
  p.op(0x8c).op(3).raw("tup").op('N').op(0x88).op(0x86);
  p.op(0x8c).op(3).raw("mem").op(']').op(0x94).op('h').op(1).op(0x86);  // (L, L), one list
  p.op('u').stop();
  write_bytes(dir.path("forms.pt"), legacy_file(p.b));
  const auto d = read_torch_file(dir.path("forms.pt")).toGenericDict();
  EXPECT_DOUBLE_EQ(get(d, "big").toDouble(), 18446744073709551616.0);
  EXPECT_EQ(get(d, "neg").toInt(), -256);
  EXPECT_EQ(get(d, "byt").toStringRef(), std::string("\x01\x02"));
  const auto siz = get(d, "siz").toTupleRef().elements();
  ASSERT_EQ(siz.size(), 2u);
  EXPECT_EQ(siz[1].toInt(), 3);
  EXPECT_EQ(get(d, "dty").toScalarType(), at::kBFloat16);
  const auto tup = get(d, "tup").toTupleRef().elements();
  EXPECT_TRUE(tup[0].isNone());
  EXPECT_TRUE(tup[1].toBool());
  const auto mem = get(d, "mem").toTupleRef().elements();
  ASSERT_EQ(mem.size(), 2u);
  auto first = mem[0].toList();
  first.push_back(c10::IValue(int64_t{5}));  // both entries are the same list, as in Python
  EXPECT_EQ(mem[1].toList().size(), 1u);
}

// ---- safetensors ----

TEST(Checkpoint, ReadsHandWrittenSafetensors) {
  Scratch dir;
  std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b\u00e9":{"dtype":"I64","shape":[1],"data_offsets":[16,24]},)"
      R"("m":{"dtype":"BOOL","shape":[3],"data_offsets":[24,27]},)"
      R"("s":{"dtype":"F16","shape":[],"data_offsets":[27,29]}})";
  std::string file;
  for (int k = 0; k < 8; ++k) file += static_cast<char>((header.size() >> (8 * k)) & 0xFF);
  file += header;
  file += floats({1.f, -2.f, 3.5f, 4.f});
  file += std::string("\x07\0\0\0\0\0\0\0", 8);
  file += std::string("\x01\x00\x01", 3);
  file += std::string("\x00\x3c", 2);  // float16 1.0
  write_bytes(dir.path("hand.safetensors"), file);
  const StateDict sd = read_safetensors(dir.path("hand.safetensors"));
  ASSERT_EQ(sd.size(), 4u);
  EXPECT_EQ(sd[0].first, "w");
  EXPECT_TRUE(at::equal(sd[0].second, at::tensor({1.f, -2.f, 3.5f, 4.f}).reshape({2, 2})));
  EXPECT_EQ(sd[1].first, "b\xc3\xa9");
  EXPECT_EQ(sd[1].second.scalar_type(), at::kLong);
  EXPECT_EQ(sd[1].second.item<int64_t>(), 7);
  EXPECT_EQ(sd[2].second.scalar_type(), at::kBool);
  EXPECT_EQ(sd[2].second.sum().item<int64_t>(), 2);
  EXPECT_EQ(sd[3].second.dim(), 0);
  EXPECT_EQ(sd[3].second.item<float>(), 1.0f);
  EXPECT_EQ(load_state_dict(dir.path("hand.safetensors")).size(), 4u);

  // Malformed variants.
  auto variant = [&](const std::string& h, const std::string& data) {
    std::string f;
    for (int k = 0; k < 8; ++k) f += static_cast<char>((h.size() >> (8 * k)) & 0xFF);
    return f + h + data;
  };
  const std::vector<std::pair<std::string, std::string>> bad = {
      {variant(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", std::string(8, 'x')),
       "data_offsets"},
      {variant(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x')),
       "do not match"},
      {variant(R"({"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", std::string(8, 'x')),
       "unsupported dtype"},
      {variant(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, 'x')),
       "bad shape"},
      {variant(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", std::string(4, 'x')),
       "bad safetensors header"},
      {variant(
           R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
           std::string(4, 'x')),
       "duplicate"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10), "header size"},
  };
  for (size_t k = 0; k < bad.size(); ++k) {
    const std::string path = dir.path("bad" + std::to_string(k) + ".safetensors");
    write_bytes(path, bad[k].first);
    expect_input_error([&] { read_safetensors(path); }, {path, bad[k].second});
  }
}

TEST(Checkpoint, SafetensorsRoundTrip) {
  Scratch dir;
  const StateDict in = {
      {"f32", at::randn({3, 4})},
      {"f64", at::randn({2}, at::kDouble)},
      {"f16", at::randn({5}).to(at::kHalf)},
      {"bf16", at::randn({2, 1}).to(at::kBFloat16)},
      {"i64", at::arange(6, at::kLong).reshape({2, 3})},
      {"i32", at::arange(3, at::kInt)},
      {"u8", at::arange(4, at::kByte)},
      {"bool", at::arange(3) != 1},
      {"view \"q\"", at::randn({4, 4}).t()},  // non-contiguous, name needs escaping
      {"empty", at::empty({0, 3})},
  };
  write_safetensors(dir.path("rt.safetensors"), in);
  const StateDict out = read_safetensors(dir.path("rt.safetensors"));
  ASSERT_EQ(out.size(), in.size());
  for (size_t k = 0; k < in.size(); ++k) {
    SCOPED_TRACE(in[k].first);
    EXPECT_EQ(out[k].first, in[k].first);
    EXPECT_EQ(out[k].second.scalar_type(), in[k].second.scalar_type());
    EXPECT_TRUE(at::equal(out[k].second, in[k].second));
  }
  EXPECT_THROW(
      write_safetensors(dir.path("dup.safetensors"), {{"a", at::ones({1})}, {"a", at::ones({1})}}),
      UsageError);
  EXPECT_THROW(
      write_safetensors(dir.path("c.safetensors"), {{"c", at::ones({1}, at::kComplexFloat)}}),
      UsageError);
}

// ---- corruption: truncations and byte flips must load or throw InputError ----

/// Reads `path` every way; returns true if it loaded, false on InputError. Anything else fails.
bool survives(const std::string& path) {
  try {
    read_torch_file(path);
  } catch (const InputError&) {
    return false;
  }
  try {
    load_state_dict(path);
  } catch (const InputError&) {
  }
  return true;
}

// PyTorchStreamReader never checks the records' CRC32: a flipped bit inside a tensor's bytes
// loaded as a different network. Our reader compares every record with the directory's CRC.
TEST(Checkpoint, FlippedTensorBytesFailTheCrc32Check) {
  const std::string src = fixture("checkpoint/edge_zip.pt");
  ASSERT_TRUE(fs::exists(src)) << "committed fixture missing: " << src;
  Scratch dir;
  std::string bytes = read_bytes(src);
  // The first stored tensor record: its local header names "<folder>/data/0".
  const size_t name = bytes.find("/data/0");
  ASSERT_NE(name, std::string::npos);
  const size_t header = bytes.rfind("PK\x03\x04", name);
  ASSERT_NE(header, std::string::npos);
  const auto le16 = [&](size_t at) {
    return static_cast<size_t>(static_cast<uint8_t>(bytes[at])) |
           static_cast<size_t>(static_cast<uint8_t>(bytes[at + 1])) << 8;
  };
  const size_t data = header + 30 + le16(header + 26) + le16(header + 28);
  bytes[data] = static_cast<char>(bytes[data] ^ 0x10);
  const std::string path = dir.path("flipped.pt");
  write_bytes(path, bytes);
  try {
    load_state_dict(path);
    FAIL() << "a flipped tensor byte loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("CRC32"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("data/0"), std::string::npos) << e.what();
  }
}

// NaN or infinite weights are refused with the tensor's name, not turned into NaN samples.
TEST(Checkpoint, NonFiniteWeightsAreRefusedByName) {
  Scratch dir;
  UNetConfig c = fixtures::small_unet_config();
  UNet net(c);
  StateDict sd = net.named_parameters();
  for (auto& [name, t] : sd) t = t.clone();
  sd[3].second.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  const std::string path = dir.path("nan.safetensors");
  write_safetensors(path, sd);
  try {
    UNetDenoiser::from_checkpoint(c, path);
    FAIL() << "NaN weights loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'" + sd[3].first + "'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
  sd[3].second.view(-1)[0] = 0.0f;
  write_safetensors(path, sd);
  EXPECT_NO_THROW(UNetDenoiser::from_checkpoint(c, path));
}

TEST(Checkpoint, SurvivesTruncationAndByteFlips) {
  Scratch dir;
  const auto start = std::chrono::steady_clock::now();
  int loaded = 0, rejected = 0;
  std::vector<std::string> sources = {fixture("checkpoint/edge_zip.pt"),
                                      fixture("checkpoint/edge_legacy.pt")};
  {
    write_safetensors(dir.path("small.safetensors"),
                      {{"a", at::randn({3, 2})}, {"b", at::arange(4)}});
    sources.push_back(dir.path("small.safetensors"));
  }
  std::mt19937 rng(1234);
  for (const auto& src : sources) {
    ASSERT_TRUE(fs::exists(src)) << "committed fixture missing: " << src;
    const std::string bytes = read_bytes(src);
    const std::string ext = src.substr(src.rfind('.'));
    ASSERT_TRUE(survives(src));  // the intact file loads
    const std::string path = dir.path("corrupt" + ext);
    for (size_t cut = 0; cut < bytes.size(); cut += 97) {
      write_bytes(path, bytes.substr(0, cut));
      (survives(path) ? loaded : rejected)++;
    }
    for (int trial = 0; trial < 300; ++trial) {
      std::string b = bytes;
      const int flips = 1 + trial % 3;
      for (int k = 0; k < flips; ++k) {
        const size_t at = std::uniform_int_distribution<size_t>(0, b.size() - 1)(rng);
        b[at] = static_cast<char>(trial < 150 ? b[at] ^ (1 << (rng() % 8)) : rng() % 256);
      }
      write_bytes(path, b);
      (survives(path) ? loaded : rejected)++;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(rejected, 100);  // truncations must mostly be caught
  EXPECT_LT(seconds, 60.0);
  std::cout << "corruption trials: " << loaded << " loaded, " << rejected << " rejected, "
            << seconds << " s\n";
}

}  // namespace
}  // namespace copaint
