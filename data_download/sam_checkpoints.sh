#!/usr/bin/env bash
# Download the official SAM checkpoints (sha256-verified, resumable).
#
#   bash data_download/sam_checkpoints.sh [DIR] [vit_b vit_l vit_h]
#
# DIR defaults to SCSAM_CHECKPOINT_DIR (else ~/.cache/scsam-lite/checkpoints); the variants default to vit_b,
# the generalist's default (358 MB). vit_l is 1.2 GB, vit_h 2.4 GB.
set -euo pipefail
if ! command -v scsam-lite >/dev/null 2>&1; then
    echo "scsam-lite is not installed in this environment: run 'pip install -e .' in the repository first" >&2
    exit 1
fi
root_args=()
if [ "$#" -gt 0 ] && [[ "$1" != vit_* ]]; then
    root_args=(--root "$1")
    shift
fi
variants=("$@")
[ "${#variants[@]}" -eq 0 ] && variants=(vit_b)
for v in "${variants[@]}"; do
    scsam-lite download "sam-${v//_/-}" ${root_args[@]+"${root_args[@]}"}
done
