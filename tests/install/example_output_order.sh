#!/bin/sh
# The examples print results on stdout and progress on stderr. Redirected
# into one file, the two must keep the order they were printed in: each
# epoch's result line comes after that epoch's progress lines and before
# the next epoch's (a fully buffered stdout would put every result after
# all the progress). Runs the EM3 example for 2 epochs (a few seconds).
set -eu
root=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$root/build/examples/em3_ranking" "$tmp/items.mmfc" 1 2 > "$tmp/out" 2>&1 ||
    { cat "$tmp/out"; exit 1; }
# the run's header line first; each "training with" line just before that
# run's first progress line; each epoch's result after its progress lines
# and before the next epoch's
awk '
    NR == 1 && !/^em3_ranking:/ { print "line 1 is not the header: " $0; bad = 1 }
    after_training && !/^  epoch 1\/2 step/ { print "progress does not follow: " prev; bad = 1 }
    { after_training = /^training with alpha/; prev = $0 }
    /^  epoch 1\/2 step/ && !p1 { p1 = NR }
    /^  epoch 2\/2 step/ && !p2 { p2 = NR }
    /^epoch 1\/2  bce=/ && !r1 { r1 = NR }
    /^epoch 2\/2  bce=/ && !r2 { r2 = NR }
    END {
        if (bad) exit 1
        if (!(p1 && r1 && p2 && r2)) { print "progress or result lines missing"; exit 1 }
        if (!(p1 < r1 && r1 < p2 && p2 < r2)) {
            printf "out of order: progress 1 at %d, result 1 at %d, progress 2 at %d, result 2 at %d\n", p1, r1, p2, r2
            exit 1
        }
    }' "$tmp/out" || { cat "$tmp/out"; exit 1; }
echo "example output order ok"
