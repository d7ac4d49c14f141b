#!/bin/sh
# Builds and runs the two training examples of the documentation as a user
# would copy them: the README's "A training loop" and the one at the top of
# include/mmrec/mmrec.h. Each must compile without warnings, run, and print
# a last loss below its first.
set -eu
root=$1 blas=${2:-openblas}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc=${CC:-cc}
if [ "$blas" = blis ]; then blas_libs=-lblis; else blas_libs=$(pkg-config --libs openblas); fi

# the first ```c block after the heading
sed -n '/^## A training loop/,/^## /p' "$root/README.md" |
    sed -n '/^```c$/,/^```$/p' | sed '1d;$d' > "$tmp/readme.c"
# the indented code of the header's opening comment
sed -n '1,/\*\//p' "$root/include/mmrec/mmrec.h" | sed -n 's/^ \*     //p' > "$tmp/header.c"

for ex in readme header; do
    [ -s "$tmp/$ex.c" ] || { echo "doc_examples: no code found for the $ex example"; exit 1; }
    $cc -std=c11 -Wall -Wextra -Werror -I"$root/include" -o "$tmp/$ex" "$tmp/$ex.c" \
        "$root/lib/libmmrec.a" $blas_libs -lm -lpthread ||
        { echo "doc_examples: the $ex example does not compile"; cat -n "$tmp/$ex.c"; exit 1; }
    (cd "$tmp" && ./"$ex") > "$tmp/$ex.out" ||
        { echo "doc_examples: the $ex example failed"; cat "$tmp/$ex.out"; exit 1; }
    first=$(sed -n 's/^step 0 loss //p' "$tmp/$ex.out")
    last=$(tail -n 1 "$tmp/$ex.out" | sed -n 's/^step [0-9]* loss //p')
    [ -n "$first" ] && [ -n "$last" ] && [ -s "$tmp/model.mmrc" ] ||
        { echo "doc_examples: the $ex example printed no losses or saved nothing"; cat "$tmp/$ex.out"; exit 1; }
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' ||
        { echo "doc_examples: the $ex example did not learn ($first -> $last)"; exit 1; }
    echo "$ex example: loss $first -> $last"
    rm -f "$tmp/model.mmrc"
done
