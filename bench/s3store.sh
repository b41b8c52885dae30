#!/usr/bin/env bash
# The whole store on a bucket, against raw PUTs of the same bytes through
# the same client (bench/s3put), on a local versitygw, alternating, in the
# same run, REPS times each (default 3):
#   ingest   mephstore ingest of a SIZE_MIB file into a store on the bucket
#            (stage and hash locally, upload with the digest known, commit
#            the record as a log entry)   vs  s3put file: one PUT of it
#   publish  mephstore publish of a stream of VERSIONS versions x 480
#            products (4 items each) from the store on the bucket to a
#            bucket prefix (data copied server-side from the pool)
#            vs  s3put tree: PUT of every file of the same tree, 4 at a time
# and, once, the insert of that tree into the store and a cold rebuild of a
# machine's cache from the log. Prints seconds and peak RSS of each run and
# the median ratios (raw seconds / mephstore seconds: 1.0 is raw speed).
#   bench/s3store.sh [SIZE_MIB] [VERSIONS]     (defaults 1024 and 4: S)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
versions=${2:-4}
reps=${REPS:-3}
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-s3store.XXXXXX")
. bench/versitygw.sh
go build -o "$base/mephstore" ./cmd/mephstore
go build -o "$base/s3put" ./bench/s3put
m=$base/mephstore
store="s3://bench/store?endpoint=$endpoint"
ms=("$m" --store "$store" --cache "$base/cache")
ms() { "${ms[@]}" "$@"; }

# timed LABEL CMD...: prints "LABEL seconds peak_RSS_MiB"
timed() {
  local label=$1; shift
  /usr/bin/time -o "$base/time" -f '%e %M' "$@" >/dev/null 2>"$base/err" || { cat "$base/err" >&2; exit 1; }
  set -- $(cat "$base/time")
  echo "$label $1 $(( $2 / 1024 ))"
}

head -c $((size << 20)) /dev/urandom > "$base/blob"
"$m" dev make-tree "$base/tree" -- --releases 12 --arches 5 --kernels 8 --versions "$versions" >/dev/null
items=$((480 * 4 * versions))
ms init "$store" >/dev/null
ms stream create daily >/dev/null
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, versitygw posix on $(df -T "$base" | awk 'NR==2{print $2}'), $size MiB blob, $versions versions ($items items)"
timed insert "${ms[@]}" insert --no-verify "$base/tree" daily
rm -rf "$base/cache"
timed cache-rebuild "${ms[@]}" stream list
echo "# op seconds peak_RSS_MiB"
for i in $(seq "$reps"); do
  timed ingest-raw "$base/s3put" file "$endpoint" bench "raw-$i" "$base/blob"
  timed ingest "${ms[@]}" ingest "$base/blob"
  ms gc --older 0s --keep-history 1 >/dev/null; ms gc --older 0s --keep-history 1 >/dev/null  # the next ingest stores new bytes again
  timed publish-raw "$base/s3put" tree "$endpoint" bench "rawtree-$i" "$base/tree"
  timed publish "${ms[@]}" publish daily --publish-root "s3://bench/www-$i?endpoint=$endpoint" --no-sign
  rm -rf "$base/data/bench/raw-$i" "$base/data/bench/rawtree-$i" "$base/data/bench/www-$i"
done | tee "$base/runs"
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for op in ingest publish; do
  raw=$(awk -v o="$op-raw" '$1==o{print $2}' "$base/runs" | median)
  ours=$(awk -v o="$op" '$1==o{print $2}' "$base/runs" | median)
  rss=$(awk -v o="$op" '$1==o{print $3}' "$base/runs" | median)
  echo "$op: raw ${raw}s, mephstore ${ours}s: $(echo "scale=2; $raw / $ours" | bc) of raw speed, peak RSS ${rss} MiB"
done
