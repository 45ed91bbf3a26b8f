# Sourced by the scripts: where the CUDA build's LibTorch lives. One place for the pin and paths.
#   COPAINT_CACHE         cache folder outside the repository (default ~/.cache/copaint)
#   COPAINT_TORCH_PIN     the pip torch release the GPU machines run (torch==2.11.*)
#   COPAINT_TORCH_DIR     where scripts/setup.sh --cuda installs it ($COPAINT_CACHE/torch-2.11)
#   COPAINT_TORCH_PREFIX  set it to use another torch instead, e.g. a GPU machine's own:
#                         COPAINT_TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
COPAINT_CACHE="${COPAINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copaint}"
COPAINT_TORCH_PIN="${COPAINT_TORCH_PIN:-2.11.*}"
COPAINT_TORCH_DIR="${COPAINT_TORCH_DIR:-$COPAINT_CACHE/torch-${COPAINT_TORCH_PIN%.\*}}"

# Prints the CMake prefix of the CUDA build's LibTorch, or fails with what to run.
copaint_torch_prefix() {
  if [[ -n "${COPAINT_TORCH_PREFIX:-}" ]]; then
    echo "$COPAINT_TORCH_PREFIX"
  elif [[ -f "$COPAINT_TORCH_DIR/.complete" ]]; then
    echo "$COPAINT_TORCH_DIR/torch/share/cmake"
  else
    echo "no CUDA LibTorch in $COPAINT_TORCH_DIR: run scripts/setup.sh --cuda" \
         "(or set COPAINT_TORCH_PREFIX to a torch's cmake_prefix_path)" >&2
    return 1
  fi
}
