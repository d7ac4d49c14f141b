#!/bin/sh
# Checks that every function declared with MMREC_API in include/mmrec/*.h
# has a doc comment of its own, with its "Since 0.N" tag: the header is the
# manual, and a function documented only by a neighbour's block leaves its
# own arguments, statuses and thread safety unstated.
#
# A declaration's doc comment is the /* ... */ block ending on the line just
# above the declaration's first line, with no code on the lines it spans
# (tools/api-symbols.sh -l reads them). So these fail:
#   - a declaration right after another one, or after the
#     "#define mmrec_X_config_init(cfg)" macro of a config: give it its own
#     block above it;
#   - a blank line between the block and the declaration;
#   - a block without "Since 0.N" (tools/check-symbols.sh checks that N
#     names the function's version node).
# Prints one line per offending declaration, "file:line: name: why", then
# the names, and exits 1; prints a one-line summary and exits 0 otherwise.
# Needs no build; make check-symbols runs it.
set -u
export LC_ALL=C
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if ! tools/api-symbols.sh -l > "$tmp/decl" 2> "$tmp/decl.err"; then
    echo "check-docs: cannot read the declarations:"; cat "$tmp/decl.err"; exit 1
fi
# decl lines: "name since file:line doc|nodoc"; report in header order.
awk '$4 == "nodoc" { print $3 ": " $1 ": no doc comment of its own (a /* */ block" \
                           " ending on the line just above the declaration)" }
     $4 == "doc" && $2 == "-" { print $3 ": " $1 ": its doc comment has no \"Since 0.N\"" }' \
    "$tmp/decl" | sort -t: -k1,1 -k2,2n > "$tmp/bad"
total=$(($(wc -l < "$tmp/decl")))
if [ -s "$tmp/bad" ]; then
    sed 's/^/check-docs: /' "$tmp/bad"
    n=$(($(wc -l < "$tmp/bad")))
    echo "check-docs: $n of $total MMREC_API declarations lack a doc comment or its Since tag:"
    cut -d: -f3 "$tmp/bad" | awk '
        { if (len > 0 && len + length($1) > 72) { printf "\n"; len = 0 }
          printf "%s%s", len ? " " : "    ", $1; len += length($1) + 1 }
        END { if (len > 0) printf "\n" }'
    exit 1
fi
echo "check-docs: all $total MMREC_API declarations have their own doc comment with a Since tag"
