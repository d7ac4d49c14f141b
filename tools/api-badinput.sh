#!/bin/sh
# Lists the fallible public functions (those of tests/api_params.h that
# return mmrec_status) without a bad-input test beyond NULL in tests/*.c:
#     MT_EXPECT(mmrec_X(...), <status>, "<needle>")
# where <status> is a caller-input error (MMREC_EINVAL, MMREC_ESHAPE,
# MMREC_ERANGE, MMREC_ENOTFOUND, MMREC_ENUMERIC, MMREC_ESTALE) and the
# needle names the argument: it holds one of mmrec_X's parameter names as a
# word ("n is 14", "cfg->k is 0", "'tensor' belongs to a step"), or the text
# of a string literal passed in the call (the name looked up, the file).
# NULL-argument checks do not count (a needle saying "NULL", or a call with
# a NULL argument and a needle that is only a name, "'path'"); neither does
# tests/test_api_names.c, which passes every pointer as NULL. Calls made
# through function pointers or helpers are not seen: such a test needs a
# direct MT_EXPECT too.
#
# Functions whose only inputs are handles, outputs, files and values that
# cannot be wrong (any seed) are exempt, with the reason, below. The script
# fails when a function not exempt has no such test, and when an exempt one
# has one (the exemption is then stale).
#
# Usage: tools/api-badinput.sh [-v]   (-v: also list, per function, the
#                                      test files that count)
set -eu
export LC_ALL=C
cd "$(dirname "$0")/.."
verbose=0
[ "${1:-}" = "-v" ] && verbose=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/exempt" <<'EOF'
mmrec_cache_num_items only an open cache and an output
mmrec_cache_num_fields only an open cache and an output
mmrec_cache_open only a file: its errors name the file (MMREC_EIO, MMREC_EFORMAT)
mmrec_cache_refresh only an open cache and a file: its errors name the file (MMREC_EIO, MMREC_EFORMAT)
mmrec_cache_writer_commit only a writer: its errors are of state and I/O
mmrec_index_info only an index and outputs
mmrec_index_open only a file: its errors name the file (MMREC_EIO, MMREC_EFORMAT)
mmrec_index_save only an index and a path: its errors are of I/O
mmrec_interactions_read_lightgcn only a file: its errors name the file and line
mmrec_rng_seed any seed is valid
mmrec_rng_next_u64 only a generator and an output
mmrec_interactions_info only an interactions object and outputs
mmrec_interactions_pairs only an interactions object and outputs
mmrec_sequences_info only a sequences object and outputs
mmrec_sequences_train_counts only a sequences object and an output
mmrec_model_create only an output
mmrec_model_seed any seed is valid
mmrec_model_load only a model and a file: its errors name the file or the parameter (MMREC_EFORMAT)
mmrec_model_num_params only a model and an output
mmrec_model_param_count only a model and outputs
mmrec_model_save only a model and a path: its errors are of I/O
mmrec_model_zero_grad only a model
mmrec_optimizer_step_count only an optimizer and an output
mmrec_optimizer_last_grad_norm only an optimizer and an output
mmrec_optimizer_skipped_steps only an optimizer and an output
mmrec_tape_create only an output
mmrec_tape_get_mode only a tape and an output
mmrec_tape_seed any seed is valid
mmrec_tape_memory only a tape and outputs
mmrec_tape_generation only a tape and an output
EOF
# The fallible functions, and "name param param ..." for each.
sed -n 's/^    {"\(mmrec_[a-z0-9_]*\)", "mmrec_status",.*/\1/p' tests/api_params.h | sort > "$tmp/fallible"
sed -n 's/^    {"\(mmrec_[a-z0-9_]*\)", "[^"]*", "[^"]*", [0-9]*, {\(.*\)}},$/\1 \2/p' tests/api_params.h |
    sed 's/{"\([a-z0-9_]*\)", "[^"]*", [01]}/\1/g; s/{NULL, NULL, 0}//; s/,//g' > "$tmp/params"

# Every MT_EXPECT of the tests that counts: "function file".
for f in tests/*.c; do
    [ "$f" = tests/test_api_names.c ] && continue
    awk -v params="$tmp/params" '
    BEGIN {
        while ((getline l < params) > 0) { k = index(l, " "); par[substr(l, 1, k - 1)] = substr(l, k + 1) }
        input["MMREC_EINVAL"] = input["MMREC_ESHAPE"] = input["MMREC_ERANGE"] = 1
        input["MMREC_ENOTFOUND"] = input["MMREC_ENUMERIC"] = input["MMREC_ESTALE"] = 1
    }
    { text = text $0 "\n" }
    function trim(s) { gsub(/^[ \t\n]+|[ \t\n]+$/, "", s); return s }
    # Splits s at top-level commas into part[1..n].
    function split_top(s, part,    n, i, c, depth, q, cur) {
        n = 0; depth = 0; q = ""; cur = ""
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (q != "") {
                cur = cur c
                if (c == "\\") { i++; cur = cur substr(s, i, 1); continue }
                if (c == q) q = ""
                continue
            }
            if (c == "\"" || c == "\047") { q = c; cur = cur c; continue }
            if (c == "(" || c == "[" || c == "{") depth++
            if (c == ")" || c == "]" || c == "}") depth--
            if (c == "," && depth == 0) { part[++n] = trim(cur); cur = ""; continue }
            cur = cur c
        }
        part[++n] = trim(cur)
        return n
    }
    # The text of the string literals in s, joined by newlines.
    function literals(s,    out, i, c, cur, inq) {
        out = ""; inq = 0; cur = ""
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (!inq) { if (c == "\"") { inq = 1; cur = "" } else if (c == "\047") i += 2; continue }
            if (c == "\\") { cur = cur substr(s, i, 2); i++; continue }
            if (c == "\"") { inq = 0; out = out "\n" cur; continue }
            cur = cur c
        }
        return out
    }
    # Whether the needle names an argument of fn called with `args`.
    function names_argument(fn, needle, args,    n, w, k, lit, l, m) {
        n = split(par[fn], w, " ")
        for (k = 1; k <= n; k++)
            if (needle ~ ("(^|[^A-Za-z0-9_])" w[k] "([^A-Za-z0-9_]|$)")) return 1
        m = split(literals(args), lit, "\n")
        for (l = 1; l <= m; l++)
            if (length(lit[l]) >= 2 && index(needle, lit[l]) > 0) return 1
        return 0
    }
    END {
        rest = text
        while ((at = index(rest, "MT_EXPECT(")) > 0) {
            rest = substr(rest, at + 10)
            # the balanced argument list
            depth = 1; q = ""
            for (i = 1; i <= length(rest) && depth > 0; i++) {
                c = substr(rest, i, 1)
                if (q != "") { if (c == "\\") i++; else if (c == q) q = ""; continue }
                if (c == "\"" || c == "\047") q = c
                else if (c == "(") depth++
                else if (c == ")") depth--
            }
            args = substr(rest, 1, i - 2)
            rest = substr(rest, i)
            if (split_top(args, a) != 3) continue
            call = a[1]; status = a[2]; needle = a[3]
            if (!match(call, /^mmrec_[a-z0-9_]+[ \t\n]*\(/)) continue
            fn = substr(call, 1, RLENGTH - 1); sub(/[ \t\n]+$/, "", fn)
            if (!(fn in par) || !(status in input) || needle !~ /^"/) continue
            inner = substr(call, RLENGTH + 1); sub(/\)[ \t\n]*$/, "", inner)
            n = split_top(inner, ca)
            has_null = 0
            for (k = 1; k <= n; k++) if (ca[k] == "NULL") has_null = 1
            text_needle = literals(needle); gsub(/\n/, "", text_needle)
            if (text_needle ~ /NULL/) continue
            if (has_null && text_needle ~ /^\047?[A-Za-z_0-9]+\047?$/) continue
            if (names_argument(fn, text_needle, inner)) print fn, FILENAME
        }
    }' "$f"
done | sort -u > "$tmp/tests"

cut -d' ' -f1 "$tmp/tests" | sort -u > "$tmp/covered"
cut -d' ' -f1 "$tmp/exempt" | sort > "$tmp/exempt_names"
comm -23 "$tmp/fallible" "$tmp/covered" > "$tmp/missing"

rc=0
total=$(wc -l < "$tmp/fallible")
n_missing=$(comm -23 "$tmp/missing" "$tmp/exempt_names" | wc -l)
for fn in $(comm -23 "$tmp/missing" "$tmp/exempt_names"); do
    echo "api-badinput: $fn has no bad-input test beyond NULL whose message names the argument"
    rc=1
done
for fn in $(comm -12 "$tmp/covered" "$tmp/exempt_names"); do
    echo "api-badinput: $fn is exempt but has a bad-input test: drop the exemption"
    rc=1
done
for fn in $(comm -23 "$tmp/exempt_names" "$tmp/fallible"); do
    echo "api-badinput: exempt $fn is no fallible public function"
    rc=1
done
if [ $verbose -eq 1 ]; then
    while read -r fn; do
        if grep -q "^$fn " "$tmp/exempt"; then
            echo "$fn: exempt ($(grep "^$fn " "$tmp/exempt" | cut -d' ' -f2-))"
        else
            echo "$fn: $(awk -v f="$fn" '$1 == f { printf "%s ", $2 }' "$tmp/tests")"
        fi
    done < "$tmp/fallible"
fi
echo "api-badinput: $total fallible functions, $(wc -l < "$tmp/exempt_names") exempt," \
     "$n_missing without a bad-input test beyond NULL"
exit $rc
