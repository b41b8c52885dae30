#!/usr/bin/env bash
# Publish benchmark on streams of about 8k, 80k and 400k items (480
# products; make-test-stream --releases 12 --arches 5 --kernels 8 --versions
# 4 / 40 / 200): the first publish (renders, signs, and hard-links every
# data file into the shared pool), a publish after one new version of every
# product (render and sign again; the data pool has nearly everything), and
# a publish of the unchanged head. The same-run comparison with the real
# meph2-util sign is bench/meph2.sh.
#
#   bench/publish.sh                 # SIZES="4 40" for the two smaller ones
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
"$m" key generate --out "$base/keys" >/dev/null
printf '%-8s %-22s %9s %9s\n' items operation seconds "RSS MiB"
for v in $sizes; do
  prepare "$v"
  results=$(
    run first-publish "$m" --store "$store" publish daily --publish-root "$base/pub-$v" --sign-key "$base/keys/signing-key.asc"
    "$m" --store "$store" insert --no-verify "$tree" daily >/dev/null
    run re-render+sign "$m" --store "$store" publish daily
    run unchanged-head "$m" --store "$store" publish daily
  )
  while read -r op secs rss; do
    printf '%-8s %-22s %9s %9s\n' "$items" "$op" "$secs" "$rss"
  done <<< "$results"
  rm -rf "$tree" "$store" "$base/pub-$v"
done
