#!/usr/bin/env bash
# Download PROMISE12 training data (Zenodo record 8026660, no login)
# into ROOT/promise12/, verified. See data_download/README.md for terms of use and citation.
#
#   bash data_download/promise12.sh ROOT [--force]
set -euo pipefail
. "$(dirname "$0")/_common.sh"
run_download promise12 "$@"
