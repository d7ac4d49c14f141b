#!/bin/sh
# Compiles each public header alone as C99 (pedantic) and as C++, and
# mmrec.hpp alone as C++17, and checks that none cites a file of the
# source tree.
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
# The C++ layer: alone, twice, as C++17 with every warning an error.
if command -v "$cxx" >/dev/null; then
    printf '#include <mmrec/mmrec.hpp>\n#include <mmrec/mmrec.hpp>\nint main() { return 0; }\n' > "$tmp/t.cpp"
    $cxx -std=c++17 -pedantic -Wall -Wextra -Wshadow -Werror -I"$root/include" -c "$tmp/t.cpp" -o "$tmp/t.o"
fi
# Installed headers stand alone: no reference to files of the source tree.
if grep -nE '(^|[^a-z])(shared|src|tests|tools|bench|examples)/|[A-Za-z_]+\.(py|md)\b' \
        "$root"/include/mmrec/*.h "$root"/include/mmrec/*.hpp; then
    echo "a public header cites a file of the source tree (above); name the paper or the upstream repository"
    exit 1
fi
echo "headers ok"
