# Shared by the download scripts: find the scsam-lite command and the root folder.
# Usage inside a script: . "$(dirname "$0")/_common.sh"; run_download NAME "$@"

run_download() {
    name="$1"
    shift
    if ! command -v scsam-lite >/dev/null 2>&1; then
        echo "scsam-lite is not installed in this environment: run 'pip install -e .' in the repository first" >&2
        exit 1
    fi
    if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
        root="$1"
        shift
    else
        root="${SCSAM_DATA_ROOT:-}"
    fi
    if [ -z "$root" ]; then
        echo "usage: $0 ROOT [--source official|kaggle|zenodo] [--force]" >&2
        echo "  ROOT: the data root (or set SCSAM_DATA_ROOT); the dataset lands in ROOT/$name/" >&2
        exit 2
    fi
    exec scsam-lite download "$name" --root "$root" "$@"
}
