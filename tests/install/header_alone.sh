#!/bin/sh
# Compiles each public header alone as C99 (pedantic) and as C++.
set -eu
root=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc=${CC:-cc}; cxx=${CXX:-c++}
for h in "$root"/include/mmrec/*.h; do
    name=$(basename "$h")
    printf '#include <mmrec/%s>\n#include <mmrec/%s>\nint main(void) { return 0; }\n' "$name" "$name" > "$tmp/t.c"
    $cc -std=c99 -pedantic -Wall -Wextra -Werror -I"$root/include" -c "$tmp/t.c" -o "$tmp/t.o"
    if command -v "$cxx" >/dev/null; then
        cp "$tmp/t.c" "$tmp/t.cpp"
        $cxx -std=c++11 -pedantic -Wall -Wextra -Werror -I"$root/include" -c "$tmp/t.cpp" -o "$tmp/t.o"
    fi
done
echo "headers ok"
