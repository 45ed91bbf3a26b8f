// HDF5 image store: uint8 datasets, one chunk per image, deflate-compressed.
#include "experiments/results_h5.h"

#include <filesystem>
#include <vector>

#include <ATen/ATen.h>
#include <H5Cpp.h>

#include "framework/error.h"

namespace copaint {

struct ResultsH5::Impl {
  H5::H5File file;
};

namespace {

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

bool link_exists(const H5::H5File& file, const std::string& path) {
  std::string prefix;
  for (const auto& c : components(path)) {
    prefix += "/" + c;
    const htri_t e = H5Lexists(file.getId(), prefix.c_str(), H5P_DEFAULT);
    if (e <= 0) return false;
  }
  return !prefix.empty();
}

[[noreturn]] void fail(const std::string& file, const std::string& what, const H5::Exception& e) {
  throw InputError("HDF5 file '" + file + "': " + what + ": " + e.getDetailMsg());
}

}  // namespace

at::Tensor image_to_uint8(const at::Tensor& image) {
  if (!image.defined() || image.dim() != 3) {
    throw UsageError("image_to_uint8: expected a [C,H,W] tensor");
  }
  return image.detach()
      .to(at::kCPU, at::kFloat)
      .clamp(-1, 1)
      .add(1)
      .mul(127.5)
      .round()
      .to(at::kByte)
      .permute({1, 2, 0})
      .contiguous();
}

at::Tensor uint8_to_image(const at::Tensor& hwc) {
  return hwc.to(at::kFloat).div(127.5).sub(1.0).permute({2, 0, 1}).contiguous();
}

ResultsH5::ResultsH5(const std::string& path, Mode mode) : path_(path) {
  H5::Exception::dontPrint();
  try {
    std::error_code ec;
    if (mode == Mode::kRead) {
      if (!std::filesystem::is_regular_file(path, ec))
        throw InputError("HDF5 file '" + path + "': no such file");
      impl_.reset(new Impl{H5::H5File(path, H5F_ACC_RDONLY)});
    } else if (std::filesystem::exists(path, ec)) {
      impl_.reset(new Impl{H5::H5File(path, H5F_ACC_RDWR)});
    } else {
      impl_.reset(new Impl{H5::H5File(path, H5F_ACC_EXCL)});
    }
  } catch (const H5::Exception& e) {
    fail(path, mode == Mode::kRead ? "cannot open" : "cannot open for writing", e);
  }
}

ResultsH5::~ResultsH5() {
  try {
    impl_->file.close();
  } catch (...) {
  }
}

void ResultsH5::write_uint8(const std::string& dataset, const at::Tensor& hwc_in) {
  if (!hwc_in.defined() || hwc_in.dim() != 3 || hwc_in.scalar_type() != at::kByte) {
    throw UsageError("ResultsH5::write_uint8('" + dataset + "'): expected a uint8 [H,W,C] tensor");
  }
  const at::Tensor hwc = hwc_in.to(at::kCPU).contiguous();
  const hsize_t dims[3] = {static_cast<hsize_t>(hwc.size(0)), static_cast<hsize_t>(hwc.size(1)),
                           static_cast<hsize_t>(hwc.size(2))};
  try {
    H5::DataSet ds;
    bool reuse = false;
    if (link_exists(impl_->file, dataset)) {
      ds = impl_->file.openDataSet(dataset);
      hsize_t old[3] = {0, 0, 0};
      const H5::DataSpace space = ds.getSpace();
      reuse = space.getSimpleExtentNdims() == 3 && (space.getSimpleExtentDims(old), true) &&
              old[0] == dims[0] && old[1] == dims[1] && old[2] == dims[2];
      if (!reuse) {
        ds.close();
        impl_->file.unlink(dataset);
      }
    }
    if (!reuse) {
      H5::DSetCreatPropList dcpl;
      dcpl.setChunk(3, dims);
      if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) dcpl.setDeflate(4);
      H5::LinkCreatPropList lcpl;
      lcpl.setCreateIntermediateGroup(true);
      ds = impl_->file.createDataSet(dataset, H5::PredType::NATIVE_UINT8, H5::DataSpace(3, dims),
                                     dcpl, H5::DSetAccPropList::DEFAULT, lcpl);
    }
    ds.write(hwc.data_ptr<uint8_t>(), H5::PredType::NATIVE_UINT8);
  } catch (const H5::Exception& e) {
    fail(path_, "cannot write '" + dataset + "'", e);
  }
}

void ResultsH5::set_attributes(const std::string& path,
                               const std::map<std::string, std::string>& text,
                               const std::map<std::string, int64_t>& integers) {
  try {
    H5::H5Object* target = nullptr;
    H5::DataSet ds;
    H5::Group group;
    if (impl_->file.childObjType(path) == H5O_TYPE_DATASET) {
      ds = impl_->file.openDataSet(path);
      target = &ds;
    } else {
      group = impl_->file.openGroup(path);
      target = &group;
    }
    const H5::DataSpace scalar(H5S_SCALAR);
    const H5::StrType str(H5::PredType::C_S1, H5T_VARIABLE);
    for (const auto& [name, value] : text) {
      if (target->attrExists(name)) target->removeAttr(name);
      H5::StrType t = str;
      t.setCset(H5T_CSET_UTF8);
      H5::Attribute a = target->createAttribute(name, t, scalar);
      a.write(t, value);
    }
    for (const auto& [name, value] : integers) {
      if (target->attrExists(name)) target->removeAttr(name);
      H5::Attribute a = target->createAttribute(name, H5::PredType::NATIVE_INT64, scalar);
      const int64_t v = value;
      a.write(H5::PredType::NATIVE_INT64, &v);
    }
  } catch (const H5::Exception& e) {
    fail(path_, "cannot set attributes of '" + path + "'", e);
  }
}

void ResultsH5::write_image(const std::string& dataset, const at::Tensor& image) {
  write_uint8(dataset, image_to_uint8(image));
}

void ResultsH5::write_mask(const std::string& dataset, const at::Tensor& mask) {
  if (!mask.defined() || mask.dim() != 3 || mask.size(0) != 1) {
    throw UsageError("ResultsH5::write_mask('" + dataset + "'): expected a [1,H,W] tensor");
  }
  write_uint8(dataset, mask.detach()
                           .to(at::kCPU, at::kFloat)
                           .gt(0.5)
                           .to(at::kByte)
                           .mul(255)
                           .permute({1, 2, 0})
                           .contiguous());
}

bool ResultsH5::contains(const std::string& dataset) const {
  return link_exists(impl_->file, dataset);
}

at::Tensor ResultsH5::read_uint8(const std::string& dataset) const {
  if (!contains(dataset)) {
    throw InputError("HDF5 file '" + path_ + "': no dataset '" + dataset + "'");
  }
  try {
    H5::DataSet ds = impl_->file.openDataSet(dataset);
    const H5::DataSpace space = ds.getSpace();
    if (space.getSimpleExtentNdims() != 3) {
      throw InputError("HDF5 file '" + path_ + "': '" + dataset + "' is not [H,W,C]");
    }
    hsize_t dims[3];
    space.getSimpleExtentDims(dims);
    at::Tensor out = at::empty({static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1]),
                                static_cast<int64_t>(dims[2])},
                               at::kByte);
    ds.read(out.data_ptr<uint8_t>(), H5::PredType::NATIVE_UINT8);
    return out;
  } catch (const H5::Exception& e) {
    fail(path_, "cannot read '" + dataset + "'", e);
  }
}

at::Tensor ResultsH5::read_image(const std::string& dataset) const {
  return uint8_to_image(read_uint8(dataset));
}

at::Tensor ResultsH5::read_mask(const std::string& dataset) const {
  return read_uint8(dataset).permute({2, 0, 1}).gt(127).to(at::kFloat).contiguous();
}

void ResultsH5::copy_from(const ResultsH5& other, const std::string& dataset) {
  if (!other.contains(dataset)) {
    throw InputError("HDF5 file '" + other.path_ + "': no dataset '" + dataset + "'");
  }
  try {
    if (contains(dataset)) impl_->file.unlink(dataset);
    const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    const herr_t rc = H5Ocopy(other.impl_->file.getId(), dataset.c_str(), impl_->file.getId(),
                              dataset.c_str(), H5P_DEFAULT, lcpl);
    H5Pclose(lcpl);
    if (rc < 0) {
      throw InputError("HDF5: cannot copy '" + dataset + "' from '" + other.path_ + "' to '" +
                       path_ + "'");
    }
  } catch (const H5::Exception& e) {
    fail(path_, "cannot copy '" + dataset + "' from '" + other.path_ + "'", e);
  }
}

void ResultsH5::flush() {
  try {
    impl_->file.flush(H5F_SCOPE_GLOBAL);
  } catch (const H5::Exception& e) {
    fail(path_, "cannot flush", e);
  }
}

}  // namespace copaint
