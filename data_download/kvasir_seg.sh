#!/usr/bin/env bash
# Download Kvasir-SEG (official URL, no login; --source kaggle for the Kaggle copy)
# into ROOT/kvasir-seg/, verified. See data_download/README.md for terms of use and citation.
#
#   bash data_download/kvasir_seg.sh ROOT [--source kaggle] [--force]
set -euo pipefail
. "$(dirname "$0")/_common.sh"
run_download kvasir-seg "$@"
