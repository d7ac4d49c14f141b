#!/bin/sh
# Installs libmmrec into a temporary prefix, then builds and runs a program
# against it using nothing but pkg-config: shared, then static.
set -eu
root=$1 blas=${2:-openblas}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
make -s -C "$root" BLAS="$blas" install PREFIX="$tmp/prefix" > "$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; exit 1; }
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cc=${CC:-cc}
$cc -o "$tmp/consumer" "$root/tests/install/consumer.c" $(pkg-config --cflags --libs mmrec)
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/consumer"
# the soname link is what the program recorded
readelf -d "$tmp/consumer" | grep -q 'libmmrec.so.0' || { echo "consumer does not need libmmrec.so.0"; exit 1; }
rm -f "$tmp"/prefix/lib/libmmrec.so*
$cc -o "$tmp/consumer_static" "$root/tests/install/consumer.c" $(pkg-config --cflags --static --libs mmrec)
"$tmp/consumer_static"
make -s -C "$root" BLAS="$blas" uninstall PREFIX="$tmp/prefix" > /dev/null 2>&1
left=$(find "$tmp/prefix" -type f | wc -l)
[ "$left" -eq 0 ] || { echo "uninstall left $left files"; find "$tmp/prefix" -type f; exit 1; }
echo "install ok"
