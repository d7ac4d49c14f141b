#!/bin/sh
# Prints the functions declared with MMREC_API in include/mmrec/*.h, one name
# a line, sorted. With -l, each line is "name since file:line doc":
#   - doc is "doc" when the declaration has a doc comment of its own, else
#     "nodoc". Its doc comment is a comment block that ends on the line just
#     above the declaration's first line, with no code on the lines it
#     spans (a trailing comment after a field or a macro does not count);
#     a blank line, a #define or another declaration in between means none,
#     so declarations grouped under one block have no doc of their own.
#   - since is the "Since 0.N" tag of that doc comment, or "-" when there is
#     no doc comment or it has no tag.
# file:line is the declaration's first line. With -d, each line is
# "name<TAB>file:line<TAB>declaration", the declaration on one line with
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
            print name, stmtsince, FILENAME ":" stmtline, stmtdoc
        }
    } else if (stmt ~ /MMREC_API/) {
        printf "api-symbols: %s:%d: cannot read the MMREC_API declaration\n",
            FILENAME, stmtline > "/dev/stderr"
        bad = 1
    }
    stmt = ""
}
FNR == 1 { incom = 0; pp = 0; stmt = ""; docend = -1 }
{
    line = $0
    if (pp) { pp = (line ~ /\\$/); next }
    if (!incom && line ~ /^[ \t]*#/) { pp = (line ~ /\\$/); next }
    # Split the line into code and comments. A comment block is a doc
    # candidate when no code precedes its opening on its first line and none
    # follows its closing on its last line; docend is the line where the
    # last such block ended, doctext its text.
    code = ""; rest = line; closed = 0; after = ""
    while (rest != "") {
        if (incom) {
            e = index(rest, "*/")
            if (e == 0) { comtext = comtext " " rest; break }
            comtext = comtext " " substr(rest, 1, e - 1)
            rest = substr(rest, e + 2)
            incom = 0
            closed = purestart; closedtext = comtext; after = ""
            continue
        }
        s = index(rest, "/*")
        c = index(rest, "//")
        if (c > 0 && (s == 0 || c < s)) {
            code = code substr(rest, 1, c - 1); after = after substr(rest, 1, c - 1); break
        }
        if (s == 0) { code = code rest; after = after rest; break }
        purestart = (code substr(rest, 1, s - 1) ~ /^[ \t]*$/)
        code = code substr(rest, 1, s - 1) " "
        after = after substr(rest, 1, s - 1)
        rest = substr(rest, s + 2)
        incom = 1; comtext = ""
    }
    # Statements end at ; { or }. A statement starting on the line after a
    # doc block ended is documented by it.
    n = length(code)
    for (i = 1; i <= n; i++) {
        ch = substr(code, i, 1)
        if (ch == ";" || ch == "{" || ch == "}") { end_statement(); continue }
        if (stmt == "" && ch ~ /[ \t]/) continue
        if (stmt == "") {
            stmtline = FNR
            if (docend == FNR - 1) { stmtdoc = "doc"; stmtsince = since_of(doctext) }
            else { stmtdoc = "nodoc"; stmtsince = "-" }
        }
        stmt = stmt ch
    }
    if (closed && !incom && after ~ /^[ \t]*$/) { docend = FNR; doctext = closedtext }
    if (stmt != "") stmt = stmt " "
}
END { exit bad }
' include/mmrec/*.h > "$tmp"
case $mode in
    long) sort -u "$tmp" ;;
    decl) cat "$tmp" ;;
    *) cut -d' ' -f1 "$tmp" | sort -u ;;
esac
