// results.cells.h5: per-cell virtual datasets over results.h5, masks as 0/1, indexes and
// attributes; written to a temporary file with the HDF5 C API and renamed into place.
#include "experiments/report/cell_views.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <vector>

#include <hdf5.h>

#include "experiments/report/report.h"
#include "experiments/store/hdf5_id.h"
#include "experiments/store/results_json.h"
#include "experiments/store/stored_images.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/log.h"

namespace copaint {
namespace fs = std::filesystem;
namespace {

/// One cell's ok samples, sorted by (image, sample), all in one HDF5 file.
struct CellRows {
  const CellRecord* cell = nullptr;
  std::vector<const SampleRecord*> rows;
};

/// The [H,W,C] shape of `dataset` in `file`, or empty when it cannot be opened or is not rank 3.
std::vector<hsize_t> dataset_shape(hid_t file, const std::string& dataset) {
  if (H5Lexists(file, dataset.c_str(), H5P_DEFAULT) <= 0) return {};
  Hid d(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT));
  if (!d.ok()) return {};
  Hid space(H5Dget_space(d.get()));
  if (!space.ok() || H5Sget_simple_extent_ndims(space.get()) != 3) return {};
  std::vector<hsize_t> dims(3);
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

void check(herr_t status, const std::string& path, const std::string& what) {
  if (status < 0) throw InputError("cannot write '" + path + "': " + what);
}

void set_text(hid_t object, const std::string& name, const std::string& value,
              const std::string& path) {
  Hid type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Hid space(H5Screate(H5S_SCALAR));
  Hid attr(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  const char* text = value.c_str();
  check(attr.ok() ? H5Awrite(attr.get(), type.get(), &text) : -1, path, "attribute " + name);
}

void set_int(hid_t object, const std::string& name, int64_t value, const std::string& path) {
  Hid space(H5Screate(H5S_SCALAR));
  Hid attr(H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  check(attr.ok() ? H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) : -1, path, "attribute " + name);
}

/// A virtual dataset of `type` [N, shape...] whose row k is the whole source dataset sources[k] of
/// `source_file` (a name relative to the view file's folder).
void write_virtual(hid_t group, const std::string& name, hid_t type, const std::string& source_file,
                   const std::vector<std::string>& sources, const std::vector<hsize_t>& shape,
                   const std::string& path) {
  std::vector<hsize_t> dims = {static_cast<hsize_t>(sources.size())};
  dims.insert(dims.end(), shape.begin(), shape.end());
  Hid space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Hid source_space(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr));
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  count[0] = 1;
  for (size_t k = 0; k < sources.size(); ++k) {
    start[0] = k;
    check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                              nullptr),
          path, name);
    check(H5Pset_virtual(dcpl.get(), space.get(), source_file.c_str(), sources[k].c_str(),
                         source_space.get()),
          path, name);
  }
  H5Sselect_all(space.get());
  Hid d(H5Dcreate2(group, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  check(d.ok() ? 0 : -1, path, name);
}

/// A chunked, deflated dataset of `type` from `data` shaped `dims`.
void write_array(hid_t group, const std::string& name, hid_t file_type, hid_t mem_type,
                 const std::vector<hsize_t>& dims, const void* data, const std::string& path) {
  Hid space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
  std::vector<hsize_t> chunk = dims;
  chunk[0] = 1;
  if (dims[0] > 0) {
    H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_deflate(dcpl.get(), 4);
  }
  Hid d(H5Dcreate2(group, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(),
                   H5P_DEFAULT));
  check(d.ok() ? H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1, path, name);
}

/// The masks of `rows` as one uint8 [N,H,W,1] array of 0/1 (stored 0/255 or 0/1); false when one
/// cannot be read or has another shape.
bool read_masks(hid_t file, const std::vector<const SampleRecord*>& rows,
                const std::vector<hsize_t>& shape, std::vector<uint8_t>& out) {
  const size_t n = shape[0] * shape[1] * shape[2];
  out.assign(rows.size() * n, 0);
  for (size_t k = 0; k < rows.size(); ++k) {
    if (dataset_shape(file, rows[k]->mask_path) != shape) return false;
    Hid d(H5Dopen2(file, rows[k]->mask_path.c_str(), H5P_DEFAULT));
    uint8_t* dst = out.data() + k * n;
    if (H5Dread(d.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) return false;
    std::transform(dst, dst + n, dst, [](uint8_t v) { return static_cast<uint8_t>(v > 0); });
  }
  return true;
}

void write_cell(hid_t views, hid_t h5, const std::string& h5_name, const CellRows& c,
                const std::string& path) {
  const std::vector<hsize_t> shape = dataset_shape(h5, c.rows.front()->sample_path);
  const std::vector<hsize_t> mask_shape = dataset_shape(h5, c.rows.front()->mask_path);
  std::vector<std::string> samples, references;
  std::vector<int64_t> images, sample_indexes;
  for (const SampleRecord* r : c.rows) {
    if (dataset_shape(h5, r->sample_path) != shape ||
        dataset_shape(h5, r->reference_path) != shape) {
      log_warn("results.cells.h5: cell " + c.cell->key + " left out (" + r->sample_path +
               " unreadable or of another shape)");
      return;
    }
    samples.push_back(r->sample_path);
    references.push_back(r->reference_path);
    images.push_back(r->image_index);
    sample_indexes.push_back(r->sample_index);
  }
  std::vector<uint8_t> masks;
  if (shape.empty() || mask_shape.empty() || !read_masks(h5, c.rows, mask_shape, masks)) {
    log_warn("results.cells.h5: cell " + c.cell->key + " left out (unreadable datasets)");
    return;
  }
  const std::string name = "/cells/" + c.cell->key;
  Hid group(H5Gcreate2(views, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  check(group.ok() ? 0 : -1, path, name);
  write_virtual(group.get(), "samples", H5T_NATIVE_UINT8, h5_name, samples, shape, path);
  write_virtual(group.get(), "references", H5T_NATIVE_UINT8, h5_name, references, shape, path);
  // The float32 samples (run --float-samples) when every sample of the cell has one.
  std::vector<std::string> floats;
  for (const std::string& s : samples) {
    if (dataset_shape(h5, float_sample_path(s)) == shape) floats.push_back(float_sample_path(s));
  }
  if (floats.size() == samples.size()) {
    write_virtual(group.get(), "samples_float", H5T_NATIVE_FLOAT, h5_name, floats, shape, path);
  }
  const hsize_t n = c.rows.size();
  write_array(group.get(), "masks", H5T_STD_U8LE, H5T_NATIVE_UINT8,
              {n, mask_shape[0], mask_shape[1], mask_shape[2]}, masks.data(), path);
  write_array(group.get(), "image_index", H5T_STD_I64LE, H5T_NATIVE_INT64, {n}, images.data(),
              path);
  write_array(group.get(), "sample_index", H5T_STD_I64LE, H5T_NATIVE_INT64, {n},
              sample_indexes.data(), path);
  const CellRecord& cell = *c.cell;
  set_text(group.get(), "method", cell.method, path);
  set_text(group.get(), "variant", variant_label_to_json(cell.axes), path);
  set_text(group.get(), "settings", settings_text_to_json(cell.settings), path);
  set_text(group.get(), "dataset", cell.dataset, path);
  set_text(group.get(), "mask", cell.mask, path);
  set_text(group.get(), "model", cell.model, path);
  const std::string layout =
      "samples, references: uint8 [N,H,W,C], round((x + 1) * 127.5) of [-1,1] (virtual, over " +
      h5_name +
      "); samples_float (with run --float-samples): float32 [N,H,W,C] in [-1,1] as scored; "
      "masks: uint8 [N,H,W,1], 1 = known pixel; row k is image image_index[k], sample "
      "sample_index[k]";
  set_text(group.get(), "layout", layout, path);
  set_int(group.get(), "seed", cell.seed, path);
  set_int(group.get(), "position", cell.position, path);
}

/// The ok samples of the results in `db_path` whose images are in results.h5 beside it, by cell.
std::vector<CellRows> cell_rows(const ResultSet& rs, const std::string& h5_path) {
  std::map<int64_t, CellRows> by_cell;
  for (const SampleRecord& s : rs.samples) {
    if (s.status != "ok" || s.sample_path.empty()) continue;
    std::error_code ec;
    if (!fs::equivalent(s.h5_file, h5_path, ec)) continue;
    CellRows& c = by_cell[s.cell_id];
    c.cell = &rs.cells[static_cast<size_t>(s.cell_id)];
    c.rows.push_back(&s);
  }
  std::vector<CellRows> out;
  for (auto& [id, c] : by_cell) {
    std::sort(c.rows.begin(), c.rows.end(), [](const SampleRecord* a, const SampleRecord* b) {
      return std::make_pair(a->image_index, a->sample_index) <
             std::make_pair(b->image_index, b->sample_index);
    });
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const CellRows& a, const CellRows& b) {
    return a.cell->position < b.cell->position;
  });
  return out;
}

}  // namespace

std::string cell_views_path(const std::string& db_path) {
  return (fs::path(db_path).parent_path() / "results.cells.h5").string();
}

int64_t write_cell_views(const std::string& db_path) {
  const fs::path dir = fs::path(db_path).parent_path();
  const std::string h5_path = (dir / "results.h5").string();
  const std::string path = cell_views_path(db_path);
  std::error_code ec;
  const ResultSet rs = load_results({db_path});
  const std::vector<CellRows> cells = cell_rows(rs, h5_path);
  if (cells.empty() || !fs::exists(h5_path, ec)) {
    fs::remove(path, ec);
    return 0;
  }
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // failures are checked and reported here
  Hid h5(H5Fopen(h5_path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!h5.ok()) throw InputError("cannot read '" + h5_path + "' (HDF5)");
  const std::string tmp = temp_path_for(path);
  int64_t written = 0;
  try {
    {
      Hid views(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
      check(views.ok() ? 0 : -1, path, "cannot create the file");
      Hid group(H5Gcreate2(views.get(), "/cells", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      for (const CellRows& c : cells) {
        write_cell(views.get(), h5.get(), "results.h5", c, path);
        written += H5Lexists(views.get(), ("/cells/" + c.cell->key).c_str(), H5P_DEFAULT) > 0;
      }
      check(H5Fflush(views.get(), H5F_SCOPE_GLOBAL), path, "flush");
    }
    commit_temp_file(tmp, path);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  return written;
}

void refresh_cell_views(const std::string& db_path) {
  if (fs::path(db_path).filename() != "results.sqlite") return;
  try {
    const int64_t n = write_cell_views(db_path);
    if (n > 0) log_info(std::to_string(n) + " cell(s) stacked in " + cell_views_path(db_path));
  } catch (const std::exception& e) {
    log_warn(std::string("per-cell views not written (the results are complete without them; "
                         "the next run, merge or score rebuilds them): ") +
             e.what());
  }
}

}  // namespace copaint
