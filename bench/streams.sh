#!/usr/bin/env bash
# Stream benchmark: insert of one new version of every product, promote of
# one version of every product, clean-md to 3 versions, query and diff, on
# streams of about 8k, 80k and 400k items (make-test-stream --releases 12
# --arches 5 --kernels 8 --versions 4 / 40 / 200: 480 products).
#
# The Python tools this replaces (meph2-util, sstream-query) are not
# packaged for Debian 12, so they cannot run here; their figures on this
# machine, as given in the issue, are printed next to ours as the
# reference: at 80k items insert 6.7 s, promote 9.0 s, clean-md 3.0 s; at
# 400k insert 45 s, promote 37 s, clean-md 16 s.
#
#   bench/streams.sh               # all three sizes (the 400k setup takes minutes)
#   SIZES="4 40" bench/streams.sh  # versions per product to start from
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

declare -A ref=(
  [40:insert]=6.7 [40:promote]=9.0 [40:clean-md]=3.0
  [200:insert]=45 [200:promote]=37 [200:clean-md]=16
)


printf '%-8s %-10s %9s %9s %10s %8s\n' items operation seconds "RSS MiB" "python s" speedup
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
    r=${ref[$v:$op]:-}
    if [ -n "$r" ]; then
      printf '%-8s %-10s %9.2f %9d %10s %7.1fx\n' "$items" "$op" "$secs" "$rss" "$r" "$(echo "$r / $secs" | bc -l)"
    else
      printf '%-8s %-10s %9.2f %9d %10s %8s\n' "$items" "$op" "$secs" "$rss" - -
    fi
  done <<< "$results"
  rm -rf "$tree" "$store"
done
