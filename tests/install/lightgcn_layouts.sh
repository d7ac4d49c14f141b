#!/bin/sh
# examples/lightgcn on the data-set layouts it tells apart by their files,
# on a generated set (a second or two):
#   - train.txt, valid.txt, test.txt, disjoint: detected as held-out
#     validation; test ranks with train AND valid items masked; early
#     stopping ends the run at best_epoch + patience * eval-every and
#     reports best_epoch;
#   - a valid.txt that shares a pair with train.txt is refused with a
#     message naming the overlap;
#   - the nested layout (train_minus_valid.txt, valid.txt inside train.txt)
#     trains on train.txt without --valid and selects on valid.txt with it;
#     --valid on the held-out layout is refused.
# The data: 10 clusters of 60 items, 30 users each; every user has all of
# their cluster's items, shuffled and split 20 train / 25 valid / 15 test.
# Ranked with only train masked, a user's 25 valid and 15 test items are
# alike to a model trained on train, so about 15 * 20 / 40 of the 15 test
# items reach the top 20 (Recall@20 near 0.5); with valid masked too, the
# 15 test items are the only cluster items left (Recall@20 near 1).
set -eu
root=$1
exe="$root/build/examples/lightgcn"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/held" "$tmp/plain" "$tmp/overlap" "$tmp/nested"
# Park-Miller's generator (exact in awk's doubles), a Fisher-Yates shuffle
awk -v dir="$tmp/held" 'BEGIN {
    x = 12345
    for (u = 0; u < 300; u++) {
        c = u % 10
        for (k = 0; k < 60; k++) it[k] = 60 * c + k
        for (k = 59; k > 0; k--) {
            x = (x * 16807) % 2147483647
            j = x % (k + 1); t = it[k]; it[k] = it[j]; it[j] = t
        }
        tr = u; va = u; te = u
        for (k = 0; k < 20; k++) tr = tr " " it[k]
        for (k = 20; k < 45; k++) va = va " " it[k]
        for (k = 45; k < 60; k++) te = te " " it[k]
        print tr > (dir "/train.txt"); print va > (dir "/valid.txt"); print te > (dir "/test.txt")
    }
}'
common="--batch 512 --threads 1 --seed 7"
run() { # run <name> <args...>: stdout and stderr into $tmp/<name>.out
    name=$1; shift
    "$exe" "$@" > "$tmp/$name.out" 2>&1
}
fail() { echo "lightgcn layouts: $*"; for f in "$tmp"/*.out; do echo "== $f"; cat "$f"; done; exit 1; }
value() { sed -n "s/^RESULT .* $2=\([^ ]*\).*/\1/p" "$tmp/$1.out"; }

# (i) the layout is detected; (iii) early stopping: the run ends
# patience * eval-every epochs after its best one, before the maximum
run early "$tmp/held" $common --epochs 200 --eval-every 2 --patience 3 || fail "early run failed"
grep -q "^layout: held-out validation" "$tmp/early.out" || fail "held-out layout not detected"
grep -q "^early stop at epoch" "$tmp/early.out" || fail "no early stop within 200 epochs"
epochs=$(value early epochs); best=$(value early best_epoch)
[ "$(value early split)" = test ] || fail "early run: split is not test"
[ -n "$best" ] && [ "$epochs" -lt 200 ] && [ "$epochs" -eq $((best + 6)) ] ||
    fail "early run: epochs=$epochs best_epoch=$best, expected epochs = best_epoch + 3 * 2 < 200"
grep -q "^best epoch $best: valid recall@20" "$tmp/early.out" || fail "best epoch not printed"

# (ii) valid items are masked at test: the same training (fixed schedule,
# same seed) on the same train.txt, ranked for test.txt with valid masked
# (held-out layout) and without (the plain layout: no valid.txt)
cp "$tmp/held/train.txt" "$tmp/held/test.txt" "$tmp/plain/"
run held "$tmp/held" $common --epochs 10 --no-early-stop || fail "held-out fixed run failed"
run plain "$tmp/plain" $common --epochs 10 || fail "plain run failed"
grep -q "^layout: train.txt and test.txt" "$tmp/plain.out" || fail "plain layout not detected"
[ "$(value held best_epoch)" = 10 ] || fail "a fixed schedule reports its last epoch"
awk -v h="$(value held recall@20)" -v p="$(value plain recall@20)" \
    'BEGIN { exit !(h >= 0.8 && p <= 0.65) }' ||
    fail "test Recall@20 $(value held recall@20) with valid masked, $(value plain recall@20) without: expected >= 0.8 and <= 0.65"

# a "held-out" valid.txt sharing a pair with train.txt is refused
cp "$tmp/held/"*.txt "$tmp/overlap/"
echo "0 $(cut -d' ' -f2 "$tmp/held/train.txt" | head -n 1)" >> "$tmp/overlap/valid.txt"
if run overlap "$tmp/overlap" $common --epochs 2; then fail "an overlapping valid.txt was accepted"; fi
grep -q "valid.txt shares 1 of its 7501 pairs with train.txt" "$tmp/overlap.out" ||
    fail "no message naming the overlap"
grep -q "^RESULT" "$tmp/overlap.out" && fail "an overlapping valid.txt trained"

# the nested layout: train.txt = train_minus_valid.txt + valid.txt
cp "$tmp/held/test.txt" "$tmp/held/valid.txt" "$tmp/nested/"
cp "$tmp/held/train.txt" "$tmp/nested/train_minus_valid.txt"
cat "$tmp/held/train.txt" "$tmp/held/valid.txt" > "$tmp/nested/train.txt"
run nested "$tmp/nested" $common --epochs 2 || fail "nested run failed"
grep -q "^layout: nested validation, unused without --valid" "$tmp/nested.out" ||
    fail "nested layout not detected"
[ "$(value nested split)" = test ] || fail "nested run without --valid: split is not test"
# with --valid: early stopping on valid.txt, the figures those of the
# restored best epoch (evaluated again after the restore), not the last
run nested_valid "$tmp/nested" $common --valid --epochs 60 --eval-every 2 --patience 1 ||
    fail "nested --valid run failed"
[ "$(value nested_valid split)" = valid ] || fail "nested --valid: split is not valid"
nbest=$(value nested_valid best_epoch); nepochs=$(value nested_valid epochs)
[ -n "$nbest" ] && [ "$nepochs" -eq $((nbest + 2)) ] ||
    fail "nested --valid: epochs=$nepochs best_epoch=$nbest, expected epochs = best_epoch + 2"
grep -q "^best epoch $nbest: valid recall@20 $(value nested_valid recall@20)  ndcg@20 $(value nested_valid ndcg@20)\$" \
    "$tmp/nested_valid.out" || fail "nested --valid: the restored model's figures are not the best epoch's"
grep -q "^epoch $nepochs .*valid recall@20 $(value nested_valid recall@20)  ndcg@20 $(value nested_valid ndcg@20) " \
    "$tmp/nested_valid.out" && fail "nested --valid: the last epoch scores as the best: the check proves nothing"
if run valid_flag "$tmp/held" $common --valid --epochs 2; then fail "--valid accepted on the held-out layout"; fi
echo "lightgcn layouts ok: early stop at epoch $epochs (best $best); test Recall@20 $(value held recall@20) with valid masked, $(value plain recall@20) without"
