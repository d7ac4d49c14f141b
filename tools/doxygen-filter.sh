#!/bin/sh
# Doxygen INPUT_FILTER for the public headers (docs/Doxyfile): prints the
# header with its plain /* */ doc blocks turned into Doxygen comments, so
# the reference shows each declaration with the block written above it
# (the headers themselves keep the plain STYLE.md shape).
#   - the first block of the file (the area's paragraph) becomes the file's
#     documentation (@file);
#   - a block that ends on the line just above a declaration (code that is
#     not another comment, a blank line, a closing brace or a preprocessor
#     line other than #define) becomes that declaration's /** */ block;
#   - a comment after code on the same line (a struct member, an enum
#     value) becomes a trailing /**< */ block;
#   - inside a converted block, a parameter line "name (in) ..." becomes a
#     list item, "Returns ..." the @return section, "Thread safety: ..." a
#     @remark, and the characters Doxygen would read as markup (<, >, \, @,
#     % and #) are escaped.
# Other comments stay plain. Lines are neither added nor removed, so
# doxygen's warnings name the header's own line numbers.
# Usage: tools/doxygen-filter.sh header
exec awk '
function escape_plain(s) {
    gsub(/\\/, "\\\\", s); gsub(/@/, "\\@", s); gsub(/</, "\\<", s); gsub(/>/, "\\>", s)
    gsub(/%/, "\\%", s); gsub(/#/, "\\#", s)
    return s
}
# Escapes outside "double-quoted" text only: doxygen shows quoted text as
# written, backslashes included.
function escape(s,    out, n, parts, k) {
    n = split(s, parts, "\"")
    out = ""
    for (k = 1; k <= n; k++) {
        out = out (k % 2 ? escape_plain(parts[k]) : parts[k])
        if (k < n) out = out "\""
    }
    return out
}
# One line of a converted block: text after the leading " * " markup.
function body(line,    lead, text) {
    if (!match(line, /^[ \t]*\*?/)) return line
    lead = substr(line, 1, RLENGTH); text = substr(line, RLENGTH + 1)
    text = escape(text)
    if (text ~ /^ +[A-Za-z_][A-Za-z0-9_, .]*  *\((in|out)[,)]/) sub(/^ +/, " - ", text)
    else if (text ~ /^ *Returns /) sub(/^ *Returns /, " @return ", text)
    else if (text ~ /^ *Thread safety:/) sub(/^ */, " @remark ", text)
    return lead text
}
{ line[NR] = $0 }
END {
    n = NR; first = 1
    for (i = 1; i <= n; i++) {
        l = line[i]
        # a block starting at the beginning of a line (after indentation)
        if (l ~ /^[ \t]*\/\*[^*]/ || l ~ /^[ \t]*\/\*$/) {
            j = i
            while (j <= n && index(line[j], "*/") == 0) j++
            if (j > n) { for (k = i; k <= n; k++) print line[k]; exit }
            next_line = (j < n) ? line[j + 1] : ""
            doc = 0
            if (first) doc = 2
            else if (next_line ~ /^[ \t]*$/ || next_line ~ /^[ \t]*\/[*\/]/ ||
                     next_line ~ /^[ \t]*}/) doc = 0
            else if (next_line ~ /^[ \t]*#/) doc = (next_line ~ /^[ \t]*#[ \t]*define/)
            else doc = 1
            first = 0
            if (!doc) { for (k = i; k <= j; k++) print line[k]; i = j; continue }
            for (k = i; k <= j; k++) {
                l = line[k]
                if (k == i) {
                    p = index(l, "/*")
                    head = substr(l, 1, p - 1); rest = substr(l, p + 2)
                    end = ""
                    if (k == j) { q = index(rest, "*/"); end = substr(rest, q); rest = substr(rest, 1, q - 1) }
                    l = head "/**" escape(rest) end
                } else if (k == j) {
                    q = index(l, "*/")
                    l = body(substr(l, 1, q - 1)) substr(l, q)
                } else {
                    l = body(l)
                }
                if (k == j && doc == 2) sub(/\*\/[ \t]*$/, "@file */", l)
                print l
            }
            i = j
            continue
        }
        # a comment after code: a trailing member block
        p = index(l, "/*")
        if (p > 1 && substr(l, 1, p - 1) !~ /^[ \t]*$/ && substr(l, p + 2, 1) != "*" &&
            substr(l, 1, p - 1) !~ /"/) {
            l = substr(l, 1, p - 1) "/**<" substr(l, p + 2)
        }
        print l
    }
}' "$1"
