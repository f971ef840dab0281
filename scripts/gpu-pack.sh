#!/usr/bin/env bash
# Packs .gpu/ for a run on the lent GPU machine (../shared/gpu/pack.sh), with dist/ inside and without the packages a
# GPU benchmark never loads (the ffmpeg binary, sharp's libvips, h5wasm), so that the carried tree stays under 64 MiB.
# Usage: npm run build && scripts/gpu-pack.sh [--keep-sharp]   then carry ".gpu" and start the command with
# `source .gpu/env.sh`. --keep-sharp keeps sharp (image folders in, PNG outputs) for `npm run infer` runs there;
# --keep-data also keeps h5wasm, which `npm run train`/`distill` load with the dataset readers.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
aside=$(mktemp -d)
restore() { for p in "$aside"/*; do [[ -e $p ]] && mv "$p" "node_modules/$(basename "$p" | tr '+' '/')"; done; rmdir "$aside"; }
trap restore EXIT
drop=(@ffmpeg-installer @img sharp h5wasm)
[[ ${1:-} == --keep-sharp ]] && drop=(@ffmpeg-installer h5wasm)
[[ ${1:-} == --keep-data ]] && drop=(@ffmpeg-installer)
for pkg in "${drop[@]}"; do
  [[ -e node_modules/$pkg ]] && mv "node_modules/$pkg" "$aside/$(echo "$pkg" | tr '/' '+')"
done
rm -f .gpu/modules.tar.xz
bash ../shared/gpu/pack.sh dist
du -sh .gpu
