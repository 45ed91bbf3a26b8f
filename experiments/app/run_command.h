// The experiment subcommands: `copaint run` and `copaint merge` (run_command.cpp),
// `copaint report` and `copaint export` (report_command.cpp).
#pragma once

namespace copaint {

/// Adds `run` (experiment grids into SQLite + HDF5, resumable, sharded, --dry-run).
void register_run_command();

/// Adds `merge` (shard outputs into one database and HDF5 file).
void register_merge_command();

/// Adds `report` (comparison, ablation and timing tables).
void register_report_command();

/// Adds `export` (a stored sample as PNG, or a labelled image grid).
void register_export_command();

}  // namespace copaint
