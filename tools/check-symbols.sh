#!/bin/sh
# Compares the dynamic symbols of the built library with the version script
# and with the MMREC_API declarations in the headers.
set -eu
lib=$1 map=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep -v '^$' |
    grep -vE '^(_init|_fini|__bss_start|_edata|_end|MMREC_0\.[0-9]+)$' | sort -u > "$tmp/exported"
grep -oE '^ +mmrec_[a-zA-Z0-9_]+;' "$map" | tr -d ' ;' | sort -u > "$tmp/map"
"$(dirname "$0")/api-symbols.sh" > "$tmp/headers"
rc=0
if ! diff -u "$tmp/map" "$tmp/exported" > "$tmp/d1"; then
    echo "check-symbols: exported symbols differ from $map:"; cat "$tmp/d1"; rc=1
fi
if ! diff -u "$tmp/headers" "$tmp/map" > "$tmp/d2"; then
    echo "check-symbols: $map differs from the MMREC_API declarations (run tools/gen-map.sh):"
    cat "$tmp/d2"; rc=1
fi
bad=$(grep -vE '^mmrec_' "$tmp/exported" || true)
if [ -n "$bad" ]; then echo "check-symbols: non-mmrec_ exports: $bad"; rc=1; fi
[ $rc -eq 0 ] && echo "check-symbols: $(wc -l < "$tmp/exported") symbols, all mmrec_*, map and headers agree"
exit $rc
