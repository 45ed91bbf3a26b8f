// The single-image subcommands: `copaint inpaint` (one image, one mask, N samples) and
// `copaint inspect` (what a checkpoint holds and the `adm` flags that load it).
#pragma once

namespace copaint {

/// Adds `inpaint` to the CLI (called from cli.cpp's built-in command setup).
void register_inpaint_command();

/// Adds `inspect` to the CLI.
void register_inspect_command();

}  // namespace copaint
