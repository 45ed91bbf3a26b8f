// The experiment subcommands: `copaint run` and `copaint merge` (run_command.cpp),
// `copaint report` and `copaint export` (report_command.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/app/cli.h"

namespace copaint {

/// Adds `run` (experiment grids into SQLite + HDF5, resumable, sharded, --dry-run).
void register_run_command();

/// Adds `merge` (shard outputs into one database and HDF5 file).
void register_merge_command();

/// `run --jobs N` on CUDA: the CUDA_VISIBLE_DEVICES value of each of the `jobs` workers,
/// round-robin over `gpus` ("0,2,3": visible indices, as in cuda:N; empty: every visible GPU,
/// or N alone for device cuda:N), translated through the parent's `visible_env` (its
/// CUDA_VISIBLE_DEVICES, e.g. a SLURM allocation's "4,5": index 1 is "5"). On the CPU: empty
/// values (the workers see what this process sees). UsageError for a GPU not visible.
std::vector<std::string> place_workers(int64_t jobs, const std::string& device,
                                       const std::string& gpus, int visible_gpus,
                                       const std::string& visible_env);

/// The worker count of `run`: --jobs N, or auto (one per GPU listed or visible on CUDA, 1 on the
/// CPU); without --jobs, one per GPU of --gpus, else 1. UsageError for anything else.
int64_t jobs_count(const std::string& flag, const std::string& device, const std::string& gpus,
                   int visible_gpus);

/// The command line of worker `index` of `jobs` (`gpu` non-empty: it sees only that GPU and
/// runs on `cuda`).
std::vector<std::string> worker_argv(const CommandContext& ctx, int64_t index, int64_t jobs,
                                     const std::string& gpu);

/// Adds `report` (comparison, ablation and timing tables).
void register_report_command();

/// Adds `export` (a stored sample as PNG, or a labelled image grid).
void register_export_command();

}  // namespace copaint
