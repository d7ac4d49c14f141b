#!/bin/sh
# abidiff the built library against the committed baseline. Exit bits of
# abidiff: 1 error, 2 usage error, 4 ABI change, 8 incompatible change.
# Fails on 1, 2 and 8; on 4 (compatible change, e.g. an added function)
# prints the report and fails too, so a baseline update is a visible,
# explained commit (make abi-baseline). abidiff compares symbols with their
# version node: a function added in the node being developed is reported as
# added with it ({mmrec_x@@MMREC_0.2}), and a released function that leaves
# its node is reported as removed (mmrec_x@@MMREC_0.1), an incompatible
# change. --exported-interfaces-only ties every exported function to its
# symbol (without it, functions the library also calls internally are left
# out); the suppressions leave out the structs behind opaque handles.
set -u
lib=$1 baseline=$2 suppress=$3
if ! command -v abidiff >/dev/null; then echo "abi-check: abidiff not found (abigail-tools)"; exit 1; fi
if [ ! -f "$baseline" ]; then echo "abi-check: no baseline $baseline (make abi-baseline)"; exit 1; fi
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
abidw --headers-dir include/mmrec --exported-interfaces-only --out-file "$tmp" "$lib" || exit 1
abidiff --suppressions "$suppress" "$baseline" "$tmp"
rc=$?
if [ $rc -eq 0 ]; then echo "abi-check: ABI identical to $baseline"; exit 0; fi
if [ $((rc & 8)) -ne 0 ]; then echo "abi-check: INCOMPATIBLE change"; exit 1; fi
if [ $((rc & 3)) -ne 0 ]; then echo "abi-check: abidiff failed ($rc)"; exit 1; fi
echo "abi-check: ABI changed compatibly; update the baseline (make abi-baseline) and say why"
exit 1
