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
mktree "$tree" --releases 5 --arches 4 --kernels 5 --versions 250
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
# meph2-util is not packaged for Debian 12; bench/py/ holds stand-ins that
# run its algorithm (json.load + os.walk; os.remove + rmdir up), timed on
# the same trees in the same run. rm -rf of the same files is the floor of
# any reap on this disk.
mk() { mktree "$1" --releases 12 --arches 5 --kernels 8 --versions 200; }
big=$base/tree400k
mk "$big"
small=$base/small
mktree "$small" --stream other --versions 1
files=$(find "$big" -type f -not -path '*/streams/*' | wc -l)
echo "tree: $files data files"
sync
ratio() { printf '  %-44s %6.1fx\n' "$1" "$(echo "$2 / $3" | bc -l)"; }
f1=$(run "find-orphans (own index: no orphans)" "$m" find-orphans "$base/none.json" "$big" "$big"); echo "$f1"
p1=$(run "python find-orphans (own index)" python3 bench/py/find_orphans.py "$base/py-none.json" "$big" "$big"); echo "$p1"
f2=$(run "find-orphans (other index: all orphans)" "$m" find-orphans "$base/all.json" "$big" "$small"); echo "$f2"
p2=$(run "python find-orphans (other index)" python3 bench/py/find_orphans.py "$base/py-all.json" "$big" "$small"); echo "$p2"
ratio "find-orphans, own index: python / mephstore" "$(echo "$p1" | awk '{print $(NF-1)}')" "$(echo "$f1" | awk '{print $(NF-1)}')"
ratio "find-orphans, all orphans: python / mephstore" "$(echo "$p2" | awk '{print $(NF-1)}')" "$(echo "$f2" | awk '{print $(NF-1)}')"
sync
r1=$(run "reap-orphans --older 0s ($files files)" "$m" reap-orphans --older 0s "$base/all.json" "$big"); echo "$r1"
left=$(find "$big" -type f -not -path '*/streams/*' | wc -l)
echo "left after reap: $left data files"
pyt=$base/tree400k-py
mk "$pyt"
python3 bench/py/find_orphans.py "$base/py-all.json" "$pyt" "$small"
sync
r2=$(run "python reap-orphans ($files files)" python3 bench/py/reap_orphans.py "$base/py-all.json" "$pyt" 0); echo "$r2"
rmt=$base/tree400k-rm
mk "$rmt"
rm -rf "$rmt/streams"
sync
r3=$(run "rm -rf of the same tree" rm -rf "$rmt"); echo "$r3"
ratio "reap-orphans: python / mephstore" "$(echo "$r2" | awk '{print $(NF-1)}')" "$(echo "$r1" | awk '{print $(NF-1)}')"
ratio "reap-orphans: rm -rf / mephstore" "$(echo "$r3" | awk '{print $(NF-1)}')" "$(echo "$r1" | awk '{print $(NF-1)}')"
