#!/bin/sh
# Installs what libmmrec needs to build and test on Debian/Ubuntu (as root,
# or through sudo); extra packages may be named as arguments (benchmarks
# need python3-torch and python3-faiss: tools/install-deps.sh python3-torch
# python3-faiss). clang and libclang-rt-14-dev (its libFuzzer runtime, only
# recommended by clang-14 on Debian 12) build make fuzz.
#
# Nothing is done when every package is installed. Otherwise the package
# lists are refreshed only when apt does not know a missing package, and
# both steps wait up to 10 minutes for another apt or dpkg holding its lock
# (an unattended upgrade at boot, say) instead of failing at once.
set -eu
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# libopenmpi-dev and openmpi-bin: only for the optional MPI library (make mpi)
packages="build-essential g++ make pkg-config binutils libopenblas-dev libblis-dev check
libsubunit-dev abigail-tools doxygen valgrind
python3-cffi python3-numpy python3-pytest
libopenmpi-dev openmpi-bin
clang libclang-rt-14-dev
$*"
wait_s=600

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: every package is installed"
    exit 0
fi
echo "install-deps: installing$missing"

# apt-get update takes the lists lock, which DPkg::Lock::Timeout does not
# cover: retry while another apt holds it.
if ! apt-cache show $missing > /dev/null 2>&1; then
    waited=0
    until $sudo apt-get -o DPkg::Lock::Timeout=$wait_s update -qq; do
        [ $waited -lt $wait_s ] || { echo "install-deps: apt-get update failed" >&2; exit 1; }
        echo "install-deps: apt is busy; waiting" >&2
        sleep 10
        waited=$((waited + 10))
    done
fi
$sudo apt-get -o DPkg::Lock::Timeout=$wait_s install -y -qq --no-install-recommends \
    $missing > /dev/null
