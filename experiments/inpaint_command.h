// The single-image subcommands: `copaint inpaint` (one image, one mask, N samples) and
// `copaint inspect` (what a checkpoint holds and the `adm` flags that load it).
#pragma once

#include <cstdint>

namespace copaint {

/// Adds `inpaint` to the CLI (called from cli.cpp's built-in command setup).
void register_inpaint_command();

/// Adds `inspect` to the CLI.
void register_inspect_command();

/// The seed of sample `index`'s generator in `copaint inpaint`: seed * 1000003 + index (mod 2^64),
/// so sample i is the same whatever --samples and --batch-size are.
uint64_t inpaint_sample_seed(uint64_t seed, int64_t index);

}  // namespace copaint
