#!/bin/bash
# gc benchmark: a store with BLOBS blobs (default 1,000,000: the blobs of a
# stream of about 100k items, the rest loose) and gc's three kinds of run;
# then find-orphans and reap-orphans on a tree of about 400k items, against
# the Python meph2-util figures from the issue (11 s and over 60 s there).
#
#   ./bench/gc.sh                 # BLOBS=1000000
#   BLOBS=200000 ./bench/gc.sh    # smaller, to check linear growth
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
blobs=${BLOBS:-1000000}
go build -o "$base/mkblobs" ./bench/mkblobs

echo "== gc: store with a 100k-item stream and $blobs blobs in all"
tree=$base/tree100k
python3 "$tools/make-test-stream" --out "$tree" --releases 5 --arches 4 --kernels 5 --versions 250 >/dev/null 2>&1
store=$base/store
"$m" --store "$store" init >/dev/null
"$m" --store "$store" stream create daily >/dev/null
"$m" --store "$store" insert --no-verify "$tree" daily >/dev/null
have=$("$m" --store "$store" blobs | wc -l)
loose=$((blobs - have))
"$base/mkblobs" "$store" "$loose"
echo "blobs: $("$m" --store "$store" blobs | wc -l) ($have referenced by the stream)"
sync
run "gc 1st (records every loose blob)" "$m" --store "$store" gc
run "gc 2nd (steady state, nothing new)" "$m" --store "$store" gc
run "gc --older 0s (reaps them all)" "$m" --store "$store" gc --older 0s
"$m" --store "$store" gc --json --older 0s | grep -E '"(blobs|marked|reaped)"'

echo "== find-orphans / reap-orphans: tree of ~400k items"
big=$base/tree400k
python3 "$tools/make-test-stream" --out "$big" --releases 12 --arches 5 --kernels 8 --versions 200 >/dev/null 2>&1
small=$base/small
python3 "$tools/make-test-stream" --out "$small" --stream other --versions 1 >/dev/null 2>&1
files=$(find "$big" -type f -not -path '*/streams/*' | wc -l)
echo "tree: $files data files"
sync
run "find-orphans (own index: no orphans)" "$m" find-orphans "$base/none.json" "$big" "$big"
run "find-orphans (other index: all orphans)" "$m" find-orphans "$base/all.json" "$big" "$small"
sync
run "reap-orphans --older 0s ($files files)" "$m" reap-orphans --older 0s "$base/all.json" "$big"
left=$(find "$big" -type f -not -path '*/streams/*' | wc -l)
echo "left after reap: $left data files"
