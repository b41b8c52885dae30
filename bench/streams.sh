#!/usr/bin/env bash
# Stream benchmark: insert of one new version of every product, promote of
# one version of every product, clean-md to 3 versions, query and diff, on
# streams of about 8k, 80k and 400k items (make-test-stream --releases 12
# --arches 5 --kernels 8 --versions 4 / 40 / 200: 480 products).
# The same-run comparison with the real meph2-util is bench/meph2.sh; the
# growth with the stream's size is bench/growth.sh.
#
#   bench/streams.sh               # all three sizes (the 400k setup takes minutes)
#   SIZES="4 40" bench/streams.sh  # versions per product to start from
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

printf '%-8s %-10s %9s %9s\n' items operation seconds "RSS MiB"
for v in $sizes; do
  prepare "$v"
  "$m" --store "$store" stream create stable >/dev/null
  results=$(
    run insert   "$m" --store "$store" insert --no-verify "$tree" daily
    run promote  "$m" --store "$store" promote daily stable "$newest"
    run clean-md "$m" --store "$store" clean-md daily --max 3
    run query    "$m" --store "$store" query daily@2 --json
    run diff     "$m" --store "$store" diff daily@1 daily
  )
  while read -r op secs rss; do
    printf '%-8s %-10s %9.2f %9d\n' "$items" "$op" "$secs" "$rss"
  done <<< "$results"
  rm -rf "$tree" "$store"
done
