// The per-cell view of a results folder: `results.cells.h5` beside `results.h5`, one group per
// cell with its samples stacked as virtual datasets [N,H,W,C] over results.h5 (no copies), its
// masks as 0/1, index datasets and the cell's settings as attributes, so that a Python user
// reads a whole cell in one line. Rebuilt from SQLite and written atomically after every command
// that stores samples; results.h5 itself is never written here.
#pragma once

#include <cstdint>
#include <string>

namespace copaint {

/// `<dir>/results.cells.h5` for `<dir>/results.sqlite`.
std::string cell_views_path(const std::string& db_path);

/// Rebuilds the view file of the results database `db_path` (its results.h5 beside it) from
/// every ok sample; returns the number of cells written (0: no file is written and an old one
/// is removed). A cell whose images differ in shape, or whose datasets cannot be read, is left
/// out with a warning. InputError when the file cannot be written (a full disk).
int64_t write_cell_views(const std::string& db_path);

/// After a command stored samples in `db_path`: rebuilds its view file when it is a folder's
/// results.sqlite (shard databases have none; `merge` makes the folder's). A failure is a
/// warning (the stored results are complete without the views; the next command rebuilds them).
void refresh_cell_views(const std::string& db_path);

}  // namespace copaint
