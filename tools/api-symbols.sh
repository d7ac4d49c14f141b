#!/bin/sh
# Prints the functions declared with MMREC_API in include/mmrec/*.h, one name
# a line, sorted. With -l, each line is "name since file:line", where since
# is the "Since 0.N" tag of the declaration's doc comment (the last comment
# that starts in column 0 before it, so the declarations grouped under one
# block share its tag) or "-" when that comment has none. With -d, each line
# is "name<TAB>file:line<TAB>declaration", the declaration on one line with
# comments removed, in header order (tools/api-params.sh reads it).
#
# There is no experimental API: a declaration marked MMREC_API_EXPERIMENTAL
# is an error here, because the version script has no node for it and it
# would silently stay unexported. Adding an experimental section means giving
# it its own node in tools/gen-map.sh and a suppression for abidiff.
set -eu
export LC_ALL=C
cd "$(dirname "$0")/.."
mode=short
[ "${1:-}" = "-l" ] && mode=long
[ "${1:-}" = "-d" ] && mode=decl
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
awk -v mode=$mode '
function since_of(text) {
    if (match(text, /Since [0-9]+\.[0-9]+/)) return substr(text, RSTART + 6, RLENGTH - 6)
    return "-"
}
function end_statement(   piece, name) {
    if (stmt ~ /MMREC_API_EXPERIMENTAL/) {
        printf "api-symbols: %s:%d: MMREC_API_EXPERIMENTAL, but there is no experimental node\n",
            FILENAME, stmtline > "/dev/stderr"
        bad = 1
    } else if (match(stmt, /MMREC_API[ \t]+[^;{}()]*\(/)) {
        piece = substr(stmt, RSTART, RLENGTH - 1)
        sub(/[ \t]+$/, "", piece)
        match(piece, /[A-Za-z_][A-Za-z0-9_]*$/)
        name = substr(piece, RSTART, RLENGTH)
        if (mode == "decl") {
            gsub(/[ \t]+/, " ", stmt); sub(/ $/, "", stmt)
            print name "\t" FILENAME ":" stmtline "\t" stmt
        } else {
            print name, stmtdoc, FILENAME ":" stmtline
        }
    } else if (stmt ~ /MMREC_API/) {
        printf "api-symbols: %s:%d: cannot read the MMREC_API declaration\n",
            FILENAME, stmtline > "/dev/stderr"
        bad = 1
    }
    stmt = ""
}
FNR == 1 { incom = 0; pp = 0; doc = "-"; stmt = "" }
{
    line = $0
    if (pp) { pp = (line ~ /\\$/); next }
    if (!incom && line ~ /^[ \t]*#/) { pp = (line ~ /\\$/); next }
    # Split the line into code and comments; a comment opening in column 0
    # is a doc comment and sets the current tag.
    code = ""; rest = line
    while (rest != "") {
        if (incom) {
            e = index(rest, "*/")
            if (e == 0) { comtext = comtext " " rest; break }
            comtext = comtext " " substr(rest, 1, e - 1)
            rest = substr(rest, e + 2)
            incom = 0
            if (isdoc) doc = since_of(comtext)
            continue
        }
        s = index(rest, "/*")
        c = index(rest, "//")
        if (c > 0 && (s == 0 || c < s)) { code = code substr(rest, 1, c - 1); break }
        if (s == 0) { code = code rest; break }
        isdoc = (s == 1 && rest == line)
        code = code substr(rest, 1, s - 1) " "
        rest = substr(rest, s + 2)
        incom = 1; comtext = ""
    }
    # Statements end at ; { or }.
    n = length(code)
    for (i = 1; i <= n; i++) {
        ch = substr(code, i, 1)
        if (ch == ";" || ch == "{" || ch == "}") { end_statement(); continue }
        if (stmt == "" && ch ~ /[ \t]/) continue
        if (stmt == "") { stmtdoc = doc; stmtline = FNR }
        stmt = stmt ch
    }
    if (stmt != "") stmt = stmt " "
}
END { exit bad }
' include/mmrec/*.h > "$tmp"
case $mode in
    long) sort -u "$tmp" ;;
    decl) cat "$tmp" ;;
    *) cut -d' ' -f1 "$tmp" | sort -u ;;
esac
