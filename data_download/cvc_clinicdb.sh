#!/usr/bin/env bash
# Download CVC-ClinicDB (Kaggle API: needs ~/.kaggle/kaggle.json, KAGGLE_USERNAME/KAGGLE_KEY or KAGGLE_API_TOKEN)
# into ROOT/cvc-clinicdb/, verified. See data_download/README.md for terms of use and citation.
#
#   bash data_download/cvc_clinicdb.sh ROOT [--force]
set -euo pipefail
. "$(dirname "$0")/_common.sh"
run_download cvc-clinicdb "$@"
