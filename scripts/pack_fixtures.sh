#!/usr/bin/env bash
# Packs the large binary test fixtures (the .pt files of tests/fixtures/{unet,checkpoint,copaint,
# baselines}) into tests/fixtures/archives/*.tar.xz, which are what git tracks; configuring the
# build unpacks them back in place (cmake/fixtures.cmake), so every path stays as it was.
# Run it after adding or changing such a .pt file, then commit the archive.
# Usage: scripts/pack_fixtures.sh   (deterministic: same files, same archive bytes)
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures"
mkdir -p archives
# archive name -> folders; one archive for the nets, so that xz stores the tensors shared by
# unet/adm_tiny_cond.pt and checkpoint/adm_tiny_cond_legacy.pt once.
declare -A groups=([nets]="unet checkpoint" [copaint]="copaint" [baselines]="baselines")
for name in nets copaint baselines; do
  files=()
  for dir in ${groups[$name]}; do
    for f in "$dir"/*.pt; do [[ -e "$f" ]] && files+=("$f"); done
  done
  tmp="archives/.$name.tar.xz.partial"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -cf - "${files[@]}" |
    xz -9e -T1 -c >"$tmp"
  mv "$tmp" "archives/$name.tar.xz"
  raw=$(du -cb "${files[@]}" | tail -1 | cut -f1)
  echo "pack_fixtures: archives/$name.tar.xz: ${#files[@]} files, $raw -> $(stat -c%s "archives/$name.tar.xz") bytes"
done
