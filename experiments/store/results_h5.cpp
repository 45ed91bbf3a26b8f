// HDF5 image store: uint8 datasets, one chunk per image, deflate-compressed. Written with the C
// API so that every failure is checked once and reported as one line: after a failed write or
// close (a full disk, an I/O error) the file is marked broken and never touched again, since
// HDF5 crashes when a file whose close failed is closed a second time.
#include "experiments/store/results_h5.h"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <hdf5.h>

#include "experiments/store/hdf5_id.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"

namespace copaint {

// HDF5's exit handler closes every id left open, and crashes on a file whose close failed (left
// open on purpose, see above). Every file is closed by ResultsH5 itself, so the handler is off.
const bool kNoHdf5ExitHandler = [] {
  H5dont_atexit();
  return true;
}();

struct ResultsH5::Impl {
  hid_t file = H5I_INVALID_HID;
  bool broken = false;  ///< a write or close failed: never closed nor written again
};

namespace {

/// Room kept free for HDF5's metadata (object headers, B-trees, heaps) beside a dataset's bytes.
constexpr uint64_t kMetadataMargin = 64 * 1024;

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  std::string part;
  for (char c : path) {
    if (c == '/') {
      if (!part.empty()) out.push_back(part);
      part.clear();
    } else {
      part += c;
    }
  }
  if (!part.empty()) out.push_back(part);
  return out;
}

bool link_exists(hid_t file, const std::string& path) {
  std::string prefix;
  for (const auto& c : components(path)) {
    prefix += "/" + c;
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return !prefix.empty();
}

/// The operating system's reason in HDF5's error stack ("No space left on device"), or HDF5's
/// innermost message when there is none.
std::string h5_reason() {
  struct Found {
    std::string system, innermost;
  } found;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        auto* f = static_cast<Found*>(data);
        const std::string desc = e->desc ? e->desc : "";
        const auto at = desc.find("error message = '");
        if (at != std::string::npos && f->system.empty()) {
          const auto start = at + 17;
          f->system = desc.substr(start, desc.find('\'', start) - start);
        }
        if (!desc.empty()) f->innermost = desc;
        return 0;
      },
      &found);
  H5Eclear2(H5E_DEFAULT);
  if (!found.system.empty()) return found.system;
  return found.innermost.empty() ? "HDF5 error" : found.innermost;
}

}  // namespace

ResultsH5::ResultsH5(const std::string& path, Mode mode) : path_(path), impl_(new Impl) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by us, in one line
  std::error_code ec;
  if (mode == Mode::kRead && !std::filesystem::is_regular_file(path, ec))
    throw InputError("HDF5 file '" + path + "': no such file");
  if (mode == Mode::kRead) {
    impl_->file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  } else if (std::filesystem::exists(path, ec)) {
    impl_->file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  } else {
    impl_->file = H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  }
  if (impl_->file < 0) {
    throw InputError("HDF5 file '" + path +
                     "': " + (mode == Mode::kRead ? "cannot open" : "cannot open for writing") +
                     ": " + h5_reason());
  }
}

ResultsH5::~ResultsH5() {
  // Never throws: a file whose writes or close failed is left to the operating system.
  if (impl_ && impl_->file >= 0 && !impl_->broken) H5Fclose(impl_->file);
}

void ResultsH5::close() {
  if (!impl_ || impl_->file < 0 || impl_->broken) return;
  const hid_t file = impl_->file;
  impl_->file = H5I_INVALID_HID;
  fault_point("hdf5: before close");
  if (H5Fclose(file) < 0) {
    impl_->broken = true;
    fail("cannot close");
  }
}

void ResultsH5::fail(const std::string& what) {
  impl_->broken = true;
  throw InputError("HDF5 file '" + path_ + "': " + what + ": " + h5_reason());
}

void ResultsH5::check_writable(const std::string& what) const {
  if (impl_->file < 0 || impl_->broken) {
    throw InputError("HDF5 file '" + path_ + "': " + what +
                     ": the file is closed or an earlier write failed");
  }
}

void ResultsH5::write_uint8(const std::string& dataset, const at::Tensor& hwc_in) {
  if (!hwc_in.defined() || hwc_in.dim() != 3 || hwc_in.scalar_type() != at::kByte) {
    throw UsageError("ResultsH5::write_uint8('" + dataset + "'): expected a uint8 [H,W,C] tensor");
  }
  write_hwc(dataset, hwc_in);
}

void ResultsH5::write_float(const std::string& dataset, const at::Tensor& image) {
  if (!image.defined() || image.dim() != 3) {
    throw UsageError("ResultsH5::write_float('" + dataset + "'): expected a [C,H,W] tensor");
  }
  write_hwc(dataset, image.detach().to(at::kCPU, at::kFloat).permute({1, 2, 0}).contiguous());
}

void ResultsH5::write_hwc(const std::string& dataset, const at::Tensor& hwc_in) {
  const bool is_float = hwc_in.scalar_type() == at::kFloat;
  const hid_t type = is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
  check_writable("cannot write '" + dataset + "'");
  // Refused before HDF5 is called: HDF5 has no journal, and a write that fails half way can
  // damage what the file already holds (or crash HDF5).
  require_free_space(path_, kMetadataMargin + 2 * static_cast<uint64_t>(hwc_in.nbytes()));
  const at::Tensor hwc = hwc_in.to(at::kCPU).contiguous();
  const hsize_t dims[3] = {static_cast<hsize_t>(hwc.size(0)), static_cast<hsize_t>(hwc.size(1)),
                           static_cast<hsize_t>(hwc.size(2))};
  const hid_t file = impl_->file;
  // A dataset already there is reused when it opens and has the shape; otherwise (another shape,
  // or half written by a process that was killed or ran out of space) its link is replaced.
  hid_t ds = H5I_INVALID_HID;
  if (link_exists(file, dataset)) {
    ds = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
    if (ds >= 0) {
      Hid space(H5Dget_space(ds));
      hsize_t old[3] = {0, 0, 0};
      const bool same = space.ok() && H5Sget_simple_extent_ndims(space.get()) == 3 &&
                        H5Sget_simple_extent_dims(space.get(), old, nullptr) == 3 &&
                        old[0] == dims[0] && old[1] == dims[1] && old[2] == dims[2];
      if (!same) {
        H5Dclose(ds);
        ds = H5I_INVALID_HID;
      }
    }
    H5Eclear2(H5E_DEFAULT);
    if (ds < 0 && H5Ldelete(file, dataset.c_str(), H5P_DEFAULT) < 0)
      fail("cannot replace '" + dataset + "'");
  }
  if (ds < 0) {
    Hid dcpl(H5Pcreate(H5P_DATASET_CREATE)), lcpl(H5Pcreate(H5P_LINK_CREATE));
    Hid space(H5Screate_simple(3, dims, nullptr));
    H5Pset_chunk(dcpl.get(), 3, dims);
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) H5Pset_deflate(dcpl.get(), 4);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    ds = H5Dcreate2(file, dataset.c_str(), type, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT);
    if (ds < 0) fail("cannot write '" + dataset + "'");
  }
  Hid owned(ds);
  fault_point("hdf5: dataset created, before its data");
  if (H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, hwc.data_ptr()) < 0)
    fail("cannot write '" + dataset + "'");
  fault_point("hdf5: dataset written");
}

void ResultsH5::set_attributes(const std::string& path,
                               const std::map<std::string, std::string>& text,
                               const std::map<std::string, int64_t>& integers) {
  check_writable("cannot set attributes of '" + path + "'");
  const std::string what = "cannot set attributes of '" + path + "'";
  Hid target(H5Oopen(impl_->file, path.c_str(), H5P_DEFAULT));
  if (!target.ok()) fail(what);
  Hid scalar(H5Screate(H5S_SCALAR)), str(H5Tcopy(H5T_C_S1));
  H5Tset_size(str.get(), H5T_VARIABLE);
  H5Tset_cset(str.get(), H5T_CSET_UTF8);
  auto replace = [&](const std::string& name, hid_t type) {
    if (H5Aexists(target.get(), name.c_str()) > 0 && H5Adelete(target.get(), name.c_str()) < 0)
      fail(what);
    const hid_t a =
        H5Acreate2(target.get(), name.c_str(), type, scalar.get(), H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) fail(what);
    return a;
  };
  for (const auto& [name, value] : text) {
    Hid a(replace(name, str.get()));
    const char* v = value.c_str();
    if (H5Awrite(a.get(), str.get(), &v) < 0) fail(what);
  }
  for (const auto& [name, value] : integers) {
    Hid a(replace(name, H5T_NATIVE_INT64));
    const int64_t v = value;
    if (H5Awrite(a.get(), H5T_NATIVE_INT64, &v) < 0) fail(what);
  }
}

void ResultsH5::write_image(const std::string& dataset, const at::Tensor& image) {
  write_uint8(dataset, image_to_uint8(image));
}

void ResultsH5::write_mask(const std::string& dataset, const at::Tensor& mask) {
  if (!mask.defined() || mask.dim() != 3 || mask.size(0) != 1) {
    throw UsageError("ResultsH5::write_mask('" + dataset + "'): expected a [1,H,W] tensor");
  }
  write_uint8(
      dataset,
      mask.detach().to(at::kCPU, at::kFloat).gt(0.5).to(at::kByte).permute({1, 2, 0}).contiguous());
}

bool ResultsH5::contains(const std::string& dataset) const {
  if (impl_->file < 0) return false;
  const bool e = link_exists(impl_->file, dataset);
  H5Eclear2(H5E_DEFAULT);
  return e;
}

std::vector<std::string> ResultsH5::datasets() const {
  std::vector<std::string> out;
  if (impl_->file < 0) return out;
  H5Ovisit2(
      impl_->file, H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
        if (info->type == H5O_TYPE_DATASET)
          static_cast<std::vector<std::string>*>(data)->push_back(std::string("/") + name);
        return 0;
      },
      &out, H5O_INFO_BASIC);
  H5Eclear2(H5E_DEFAULT);
  return out;
}

bool ResultsH5::readable(const std::string& dataset) const {
  if (!contains(dataset)) return false;
  Hid ds(H5Dopen2(impl_->file, dataset.c_str(), H5P_DEFAULT));
  Hid type(ds.ok() ? H5Dget_type(ds.get()) : H5I_INVALID_HID);
  Hid space(ds.ok() ? H5Dget_space(ds.get()) : H5I_INVALID_HID);
  hsize_t dims[3] = {0, 0, 0};
  bool ok = type.ok() && space.ok() && H5Sget_simple_extent_ndims(space.get()) == 3 &&
            H5Sget_simple_extent_dims(space.get(), dims, nullptr) == 3;
  // Exactly what this program writes (uint8, or float32 for --float-samples), so a damaged
  // datatype message (a flipped sign bit) cannot pass as a converted read.
  const bool u8 = ok && H5Tequal(type.get(), H5T_STD_U8LE) > 0;
  const bool f32 = ok && H5Tequal(type.get(), H5T_IEEE_F32LE) > 0;
  ok = ok && (u8 || f32) && dims[0] * dims[1] * dims[2] <= (hsize_t(1) << 32);
  // Its chunk must exist: a damaged chunk index reads back as the fill value (zeros) silently.
  hsize_t chunk = 0;
  const hsize_t origin[3] = {0, 0, 0};
  ok = ok && H5Dget_chunk_storage_size(ds.get(), origin, &chunk) >= 0 && chunk > 0;
  if (ok) {
    std::vector<char> buf(dims[0] * dims[1] * dims[2] * (f32 ? 4 : 1));
    ok = H5Dread(ds.get(), u8 ? H5T_STD_U8LE : H5T_IEEE_F32LE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                 buf.data()) >= 0;
  }
  H5Eclear2(H5E_DEFAULT);
  return ok;
}

at::Tensor ResultsH5::read_hwc(const std::string& dataset, bool as_float) const {
  if (!contains(dataset)) {
    throw InputError("HDF5 file '" + path_ + "': no dataset '" + dataset + "'");
  }
  const std::string what = "HDF5 file '" + path_ + "': cannot read '" + dataset + "': ";
  Hid ds(H5Dopen2(impl_->file, dataset.c_str(), H5P_DEFAULT));
  if (!ds.ok()) throw InputError(what + h5_reason());
  Hid space(H5Dget_space(ds.get()));
  hsize_t dims[3] = {0, 0, 0};
  if (!space.ok() || H5Sget_simple_extent_ndims(space.get()) != 3 ||
      H5Sget_simple_extent_dims(space.get(), dims, nullptr) != 3) {
    H5Eclear2(H5E_DEFAULT);
    throw InputError("HDF5 file '" + path_ + "': '" + dataset + "' is not [H,W,C]");
  }
  at::Tensor out = at::empty(
      {static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1]), static_cast<int64_t>(dims[2])},
      as_float ? at::kFloat : at::kByte);
  if (H5Dread(ds.get(), as_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL,
              H5P_DEFAULT, out.data_ptr()) < 0)
    throw InputError(what + h5_reason());
  return out;
}

at::Tensor ResultsH5::read_uint8(const std::string& dataset) const {
  return read_hwc(dataset, false);
}

at::Tensor ResultsH5::read_float(const std::string& dataset) const {
  return read_hwc(dataset, true).permute({2, 0, 1}).contiguous();
}

at::Tensor ResultsH5::read_image(const std::string& dataset) const {
  return uint8_to_image(read_uint8(dataset));
}

at::Tensor ResultsH5::read_mask(const std::string& dataset) const {
  return read_uint8(dataset).permute({2, 0, 1}).gt(0).to(at::kFloat).contiguous();
}

void ResultsH5::copy_from(const ResultsH5& other, const std::string& dataset) {
  if (!other.contains(dataset)) {
    throw InputError("HDF5 file '" + other.path_ + "': no dataset '" + dataset + "'");
  }
  const std::string what = "cannot copy '" + dataset + "' from '" + other.path_ + "'";
  check_writable(what);
  {
    Hid src(H5Dopen2(other.impl_->file, dataset.c_str(), H5P_DEFAULT));
    const uint64_t bytes = src.ok() ? H5Dget_storage_size(src.get()) : 0;
    H5Eclear2(H5E_DEFAULT);
    require_free_space(path_, kMetadataMargin + 2 * bytes);  // H5Ocopy crashes when a write fails
  }
  if (contains(dataset) && H5Ldelete(impl_->file, dataset.c_str(), H5P_DEFAULT) < 0) fail(what);
  Hid lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  if (H5Ocopy(other.impl_->file, dataset.c_str(), impl_->file, dataset.c_str(), H5P_DEFAULT,
              lcpl.get()) < 0)
    fail(what);
  fault_point("hdf5: dataset copied");
}

bool ResultsH5::try_copy_from(const ResultsH5& other, const std::string& dataset) {
  check_writable("cannot copy '" + dataset + "' from '" + other.path_ + "'");
  if (contains(dataset)) return false;
  Hid src(H5Dopen2(other.impl_->file, dataset.c_str(), H5P_DEFAULT));
  const uint64_t bytes = src.ok() ? H5Dget_storage_size(src.get()) : 0;
  H5Eclear2(H5E_DEFAULT);
  require_free_space(path_, kMetadataMargin + 2 * bytes);
  Hid lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  if (H5Ocopy(other.impl_->file, dataset.c_str(), impl_->file, dataset.c_str(), H5P_DEFAULT,
              lcpl.get()) >= 0) {
    return true;
  }
  H5Eclear2(H5E_DEFAULT);  // e.g. a damaged attribute: nothing of it is kept
  if (contains(dataset)) H5Ldelete(impl_->file, dataset.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return false;
}

void ResultsH5::flush() {
  check_writable("cannot flush");
  if (H5Fflush(impl_->file, H5F_SCOPE_GLOBAL) < 0) fail("cannot flush");
}

}  // namespace copaint

namespace copaint {

namespace {

/// Appends a line to the salvage log (unbuffered: it must survive a crash of this process).
void log_line(int fd, const std::string& line) {
  const std::string l = line + "\n";
  if (::write(fd, l.data(), l.size()) < 0) return;
}

/// The copy itself: every dataset of `path` that reads whole and is not in `skip` into `tmp`;
/// "copy <name>" is logged before each copy, "done <kept> <dropped>" or "error <message>" at the
/// end.
[[noreturn]] void salvage_child(const std::string& path, const std::string& tmp,
                                const std::set<std::string>& skip, int log) {
  try {
    int64_t kept = 0, dropped = 0;
    ResultsH5 src(path, ResultsH5::Mode::kRead);
    ResultsH5 out(tmp, ResultsH5::Mode::kWrite);
    for (const auto& d : src.datasets()) {
      log_line(log, "copy " + d);
      // Kept only when the copy reads back as the original (H5Ocopy of a damaged object can
      // drop its chunk, which then reads as zeros).
      if (!skip.count(d) && src.readable(d) && out.try_copy_from(src, d) && out.readable(d) &&
          at::equal(out.read_uint8(d), src.read_uint8(d))) {
        ++kept;
      } else {
        ++dropped;
      }
    }
    out.close();
    log_line(log, "done " + std::to_string(kept) + " " + std::to_string(dropped));
    std::_Exit(0);
  } catch (const std::exception& e) {
    log_line(log, std::string("error ") + e.what());
    std::_Exit(1);
  }
}

std::string last_line(const std::string& file) {
  std::ifstream in(file);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  return last;
}

}  // namespace

SalvageSummary salvage_h5(const std::string& path) {
  // HDF5 1.10 can crash (SIGSEGV) copying an object whose metadata is damaged (a flipped byte in
  // a string attribute): the copy runs in a child process, and a dataset it crashed on is left
  // out on the next try.
  const std::string tmp = temp_path_for(path), log = tmp + ".log";
  // The copy needs up to the file's size beside it: on a full disk, say so before trying (the
  // child could not even log its error there).
  std::error_code size_ec;
  const uintmax_t size = std::filesystem::file_size(path, size_ec);
  if (!size_ec) require_free_space(tmp, size);
  std::set<std::string> skip;
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::remove(tmp.c_str());
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_write_error(log, errno);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) salvage_child(path, tmp, skip, fd);
    ::close(fd);
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid) {
      std::remove(log.c_str());
      throw InputError("HDF5 file '" + path + "': cannot rebuild: cannot start a process");
    }
    const std::string last = last_line(log);
    if (WIFSIGNALED(status) && last.rfind("copy ", 0) == 0) {
      skip.insert(last.substr(5));  // crashed on it: leave it out
      continue;
    }
    std::remove(log.c_str());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && last.rfind("done ", 0) == 0) {
      SalvageSummary summary;
      std::istringstream in(last.substr(5));
      in >> summary.kept >> summary.dropped;
      commit_temp_file(tmp, path);
      return summary;
    }
    std::remove(tmp.c_str());
    throw InputError(last.rfind("error ", 0) == 0
                         ? last.substr(6)
                         : "HDF5 file '" + path + "': cannot rebuild it (the copy failed)");
  }
  std::remove(tmp.c_str());
  std::remove(log.c_str());
  throw InputError("HDF5 file '" + path + "': cannot rebuild it (too many damaged objects)");
}

}  // namespace copaint
