// An HDF5 object id that closes itself: the one guard the HDF5 code (results_h5.cpp,
// cell_views.cpp) shares. Internal to the experiments library; includes HDF5's C header.
#pragma once

#include <hdf5.h>

namespace copaint {

/// Closes an HDF5 object id at scope exit, silently (failures surface in the calls that matter).
class Hid {
 public:
  explicit Hid(hid_t id = H5I_INVALID_HID) : id_(id) {}
  ~Hid() {
    if (id_ >= 0) H5Idec_ref(id_);
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
};

}  // namespace copaint
