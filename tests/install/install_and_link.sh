#!/bin/sh
# Installs libmmrec into a temporary prefix, then builds a program against
# it with each link line of the README's "Linking" section, as written
# there, and runs it: the shared link with LD_LIBRARY_PATH, the rpath link
# without it, the static link with no libmmrec.so dependency at all; the
# C++ quickstart compiles against the installed mmrec.hpp. Then
# uninstalls and checks nothing is left.
set -eu
root=$1 blas=${2:-openblas}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
make -s -C "$root" BLAS="$blas" install PREFIX="$tmp/prefix" > "$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; exit 1; }
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cc=${CC:-cc}

# the README's link lines, app.c standing for the consumer
sed -n '/^## Linking/,/^## /p' "$root/README.md" | grep '^cc -o app app.c ' > "$tmp/lines"
[ "$(wc -l < "$tmp/lines")" -eq 3 ] || { echo "expected 3 link lines in the README"; exit 1; }
n=0
while read -r line; do
    n=$((n + 1))
    cmd=$(printf '%s\n' "$line" | sed -e "s|^cc -o app app.c|$cc -o $tmp/app$n $root/tests/install/consumer.c|")
    eval "$cmd" || { echo "link line $n failed: $line"; exit 1; }
done < "$tmp/lines"

# 1: shared, found through LD_LIBRARY_PATH; it records the soname
readelf -d "$tmp/app1" | grep -q 'NEEDED.*libmmrec.so.0' || { echo "app1 does not need libmmrec.so.0"; exit 1; }
if env -u LD_LIBRARY_PATH "$tmp/app1" > /dev/null 2>&1; then
    echo "app1 started without LD_LIBRARY_PATH: the test prefix is on the loader path"; exit 1
fi
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/app1"
# 2: shared with an rpath: starts on its own
readelf -d "$tmp/app2" | grep -qE '(RPATH|RUNPATH).*'"$tmp/prefix/lib" || { echo "app2 has no rpath"; exit 1; }
env -u LD_LIBRARY_PATH "$tmp/app2"
# 3: static: no libmmrec.so dependency although the .so sits beside the .a
if readelf -d "$tmp/app3" | grep -q 'libmmrec'; then echo "app3 still needs libmmrec.so"; exit 1; fi
env -u LD_LIBRARY_PATH "$tmp/app3"

# the C++ layer is installed beside the C headers and compiles from there
cxx=${CXX:-c++}
if command -v "$cxx" > /dev/null; then
    [ -f "$tmp/prefix/include/mmrec/mmrec.hpp" ] || { echo "mmrec.hpp not installed"; exit 1; }
    # shellcheck disable=SC2046
    $cxx -std=c++17 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags mmrec) -fsyntax-only \
        "$root/examples/quickstart.cpp" || { echo "mmrec.hpp does not compile from the install"; exit 1; }
fi

make -s -C "$root" BLAS="$blas" uninstall PREFIX="$tmp/prefix" > /dev/null 2>&1
left=$(find "$tmp/prefix" -type f | wc -l)
[ "$left" -eq 0 ] || { echo "uninstall left $left files"; find "$tmp/prefix" -type f; exit 1; }
echo "install ok"
