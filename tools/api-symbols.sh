#!/bin/sh
# Prints the function names declared with MMREC_API in include/mmrec/*.h.
cd "$(dirname "$0")/.."
cat include/mmrec/*.h | grep -v '^#' | tr '\n' ' ' | grep -oE 'MMREC_API(_EXPERIMENTAL)? [^;{()]*\(' |
    grep -oE 'mmrec_[a-zA-Z0-9_]+ *\($' | tr -d ' (' | sort -u
