#!/bin/sh
# Checks the exported symbols of the built library against the version
# script, the MMREC_API declarations in the headers and the frozen lists
# tools/abi/MMREC_*.syms (see tools/gen-map.sh). Fails when:
#   - a frozen (released) function is no longer declared or not exported;
#   - a frozen list disagrees with the ABI baseline (tests/abi/libmmrec.abi)
#     on the functions of its node;
#   - the map is not what tools/gen-map.sh writes (hand edit, or a new
#     function without regenerating it);
#   - the library's exports (name and version node) differ from the map;
#   - a function is exported in a node other than the one it belongs to
#     (its frozen list's, else the version being developed);
#   - a symbol not starting with mmrec_ is declared or exported;
#   - a declaration has no doc comment of its own, or one without a
#     "Since 0.N" tag (tools/check-docs.sh, which prints the names);
#   - a declaration's doc comment says "Since 0.N" and the function is not
#     in node MMREC_0.N: the header is the manual, and a wrong tag promises
#     a function to programs built for a release that lacks it.
set -u
export LC_ALL=C
lib=$1 map=$2
baseline=${3:-tests/abi/libmmrec.abi}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rc=0
fail() { echo "check-symbols: $*"; rc=1; }

version=$(sed -n 's/^#define MMREC_VERSION_STRING "\([0-9]*\.[0-9]*\)\.[0-9]*"$/\1/p' \
    include/mmrec/core.h)
current=MMREC_$version

# Every declaration has its own doc comment with a Since tag.
tools/check-docs.sh > "$tmp/docs" 2>&1 || { cat "$tmp/docs"; rc=1; }

# Declarations: "name since file:line doc".
if ! tools/api-symbols.sh -l > "$tmp/decl" 2> "$tmp/decl.err"; then
    echo "check-symbols: cannot read the declarations:"; cat "$tmp/decl.err"; exit 1
fi
cut -d' ' -f1 "$tmp/decl" | sort -u > "$tmp/headers"   # decl is sorted, as join needs

# Where each declared function belongs: "name node", from the frozen lists,
# else the version being developed.
: > "$tmp/belongs"
for f in tools/abi/MMREC_*.syms; do
    [ -e "$f" ] || continue
    node=${f##*/}; node=${node%.syms}
    grep -vE '^(#|$)' "$f" | sort > "$tmp/frozen"
    for s in $(comm -23 "$tmp/frozen" "$tmp/headers"); do
        fail "$s ($node, released) is no longer declared in include/mmrec/"
    done
    # The baseline's record of the same node.
    if [ -f "$baseline" ]; then
        sed -n "s/.*<elf-symbol name='\([^']*\)' version='$node' .*/\1/p" "$baseline" |
            sort -u > "$tmp/base"
        if ! diff -u "$tmp/base" "$tmp/frozen" > "$tmp/d"; then
            fail "$f differs from the $node symbols of $baseline (- baseline, + frozen list):"
            tail -n +3 "$tmp/d"
        fi
    fi
    sed "s/\$/ $node/" "$tmp/frozen" >> "$tmp/belongs"
done
cut -d' ' -f1 "$tmp/belongs" | sort > "$tmp/assigned"
if [ -n "$(uniq -d "$tmp/assigned")" ]; then
    fail "in more than one frozen list: $(uniq -d "$tmp/assigned" | tr '\n' ' ')"
fi
comm -23 "$tmp/headers" "$tmp/assigned" | sed "s/\$/ $current/" >> "$tmp/belongs"
sort -u "$tmp/belongs" -o "$tmp/belongs"

# The map must be what the generator writes.
if ! tools/gen-map.sh - > "$tmp/genmap" 2> "$tmp/genmap.err"; then
    fail "tools/gen-map.sh fails:"; cat "$tmp/genmap.err"
elif ! diff -u "$map" "$tmp/genmap" > "$tmp/d"; then
    fail "$map is not what tools/gen-map.sh writes (- committed, + generated):"
    tail -n +3 "$tmp/d"
fi

# The map's "name node" pairs.
awk '/^MMREC_[0-9]+\.[0-9]+ *\{/ { node = $1; next }
     /^ +[A-Za-z_][A-Za-z0-9_]* *;/ { gsub(/[ ;]/, ""); print $0, node }' "$map" |
    sort -u > "$tmp/mapped"

# Exports: "name node" ("-" for an unversioned symbol); version definitions
# (absolute symbols named after the nodes) left out.
nm -D --defined-only "$lib" | awk '
    $2 == "A" && $3 ~ /^MMREC_[0-9]+\.[0-9]+$/ { next }
    { n = $3; v = "-"
      if ((i = index(n, "@")) > 0) { v = substr(n, i); n = substr(n, 1, i - 1); sub(/^@+/, "", v) }
      print n, v }' | sort -u > "$tmp/exported"

if ! diff -u "$tmp/mapped" "$tmp/exported" > "$tmp/d"; then
    fail "exports of $lib differ from $map (- map, + library; name and node):"
    tail -n +3 "$tmp/d"
fi
cut -d' ' -f1 "$tmp/exported" > "$tmp/exported_names"
d=$(comm -23 "$tmp/headers" "$tmp/exported_names" | tr '\n' ' ')
[ -n "$d" ] && fail "declared in include/mmrec/ but not exported: $d"
d=$(comm -13 "$tmp/headers" "$tmp/exported_names" | tr '\n' ' ')
[ -n "$d" ] && fail "exported but not declared in include/mmrec/: $d"
join "$tmp/exported" "$tmp/belongs" | awk '$2 != $3 {
    print "check-symbols: " $1 " is exported in " $2 " but belongs to " $3 }' > "$tmp/wrong"
[ -s "$tmp/wrong" ] && { cat "$tmp/wrong"; rc=1; }
for node in $(ls tools/abi/MMREC_*.syms 2>/dev/null | sed 's|.*/||; s|\.syms$||'); do
    grep -vE '^(#|$)' "tools/abi/$node.syms" | sort > "$tmp/frozen"
    for s in $(cut -d' ' -f1 "$tmp/exported" | comm -13 - "$tmp/frozen"); do
        fail "$s ($node, released) is not exported by $lib"
    done
done

bad=$(cut -d' ' -f1 "$tmp/exported" "$tmp/headers" | grep -v '^mmrec_' | sort -u | tr '\n' ' ')
[ -n "$bad" ] && fail "symbols not starting with mmrec_ declared or exported: $bad"

# "Since 0.N" tags against the nodes (a missing tag fails check-docs above).
join "$tmp/belongs" "$tmp/decl" | awk '
    $3 != "-" && "MMREC_" $3 != $2 {
        print "check-symbols: " $4 ": " $1 " is in " $2 " but its doc says Since " $3; bad = 1 }
    END { exit bad }' || rc=1

if [ $rc -eq 0 ]; then
    summary=$(cut -d' ' -f2 "$tmp/exported" | sort | uniq -c |
        awk '{ printf "%s%s: %s", sep, $2, $1; sep = ", " }')
    echo "check-symbols: $(wc -l < "$tmp/exported") symbols ($summary), all mmrec_*;" \
         "headers, frozen lists, map and exports agree; each declaration has its own doc"
fi
exit $rc
