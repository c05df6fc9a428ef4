#!/bin/sh
# install-deps.sh: make sure the libraries and tools prefer builds against are present.
#
# On Debian/Ubuntu, run as root (or with sudo available), it installs the missing packages
# with apt-get. Anywhere else it prints what is missing and what to install or `module load`.
# It is idempotent and quiet when everything is already there, so `make demo` and
# `make check` call it every time.
#
#   scripts/install-deps.sh          install what is missing (C build + tests)
#   scripts/install-deps.sh --python also the Python packages used by analysis/
#   scripts/install-deps.sh --check  only report; exit 1 if something is missing
set -eu

PKGS="build-essential pkg-config openmpi-bin libopenmpi-dev libopenblas-dev libhdf5-openmpi-dev hdf5-tools libconfig-dev libcunit1-dev libpcre2-dev libjansson-dev"
PYPKGS="python3 python3-h5py python3-numpy python3-matplotlib"
CHECK_ONLY=0
WANT="$PKGS"
for arg in "$@"; do
    case "$arg" in
    --python) WANT="$PKGS $PYPKGS" ;;
    --check) CHECK_ONLY=1 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps.sh: not a Debian/Ubuntu system. prefer needs: an MPI (Open MPI) with mpicc," >&2
    echo "  OpenBLAS with CBLAS, parallel HDF5 built on that MPI, libconfig >= 1.5, CUnit, pkg-config." >&2
    echo "  On a cluster, e.g.: module load openmpi openblas hdf5/parallel libconfig cunit" >&2
    exit 0
fi

missing=""
for p in $WANT; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0

if [ "$CHECK_ONLY" = 1 ]; then
    echo "install-deps.sh: missing:$missing" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-deps.sh: missing packages:$missing" >&2
        echo "  run as root: apt-get install -y$missing" >&2
        echo "  (on a cluster without root: module load openmpi openblas hdf5 libconfig cunit)" >&2
        exit 1
    fi
fi
echo "install-deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps.sh: done"
