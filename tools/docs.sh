#!/bin/sh
# Builds the API reference from the public headers with doxygen
# (docs/Doxyfile, filtered by tools/doxygen-filter.sh) into
# build/docs/html (index.html), and fails when doxygen reports a function
# or a class (C or C++) without documentation: its warning log names them.
# Undocumented struct members, enum values and macros are counted and
# printed but do not fail (most members document themselves by a trailing
# comment or by their struct's block).
# Usage: tools/docs.sh   (make docs)
set -eu
cd "$(dirname "$0")/.."
command -v doxygen > /dev/null ||
    { echo "docs: doxygen not found (tools/install-deps.sh installs it)"; exit 1; }
MMREC_VERSION=$(sed -n 's/^#define MMREC_VERSION_STRING "\(.*\)"$/\1/p' include/mmrec/core.h)
export MMREC_VERSION
log=build/docs/warnings.log
rm -rf build/docs/html
mkdir -p build/docs
doxygen docs/Doxyfile > build/docs/doxygen.out 2>&1 ||
    { cat build/docs/doxygen.out; echo "docs: doxygen failed"; exit 1; }
[ -f build/docs/html/index.html ] || { echo "docs: doxygen wrote no index.html"; exit 1; }

undoc=$(grep -E 'warning: (Member .* \((function|friend)\) of .* is not documented|Compound mmrec::.* is not documented)' "$log" || true)
other=$(grep -c 'warning:' "$log" || true)
if [ -n "$undoc" ]; then
    printf '%s\n' "$undoc" | sed 's/^/docs: /'
    echo "docs: $(printf '%s\n' "$undoc" | wc -l) undocumented functions or classes" \
         "(a /* */ block must end on the line just above the declaration)"
    exit 1
fi
echo "docs: build/docs/html/index.html; every function and class documented" \
     "($other other doxygen warnings in $log)"
