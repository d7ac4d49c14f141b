#!/bin/sh
# Installs what libmmrec needs to build and test on Debian/Ubuntu (as root,
# or through sudo). Benchmarks additionally need python3-torch.
set -eu
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
    build-essential g++ make pkg-config binutils \
    libopenblas-dev libblis-dev check libsubunit-dev abigail-tools "$@" > /dev/null
