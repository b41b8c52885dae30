#!/usr/bin/env bash
# S3 benchmark: SIZE_MIB (default 1024) bytes to a local versitygw, as a
# plain streamed PUT through the same client, through mephstore's pool on
# the bucket (hash, check, server-side copy under the digest) and through
# the pool with the digest known up front (hash, check, complete the
# upload under the digest; no copy), alternating,
# REPS times each (default 3), in the same run. Prints each run's seconds,
# MiB/s and peak RSS, then the median ratio pool/raw.
#   bench/s3.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
reps=${REPS:-3}
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-s3bench.XXXXXX")
. bench/versitygw.sh
go build -o "$base/s3put" ./bench/s3put
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $size MiB, versitygw posix on $(df -T "$base" | awk 'NR==2{print $2}')"
echo "# mode seconds MiB/s peak_RSS_MiB"
for i in $(seq "$reps"); do
  for mode in raw pool known; do
    sync
    /usr/bin/time -o "$base/time" -f '%M' "$base/s3put" "$mode" "$endpoint" bench "$size" | tr '\n' ' '
    echo "$(( $(cat "$base/time") / 1024 ))"
    rm -rf "$base/data/bench/bench-$mode"
  done
done | tee "$base/runs"
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
raw=$(awk '$1=="raw"{print $3}' "$base/runs" | median)
pool=$(awk '$1=="pool"{print $3}' "$base/runs" | median)
known=$(awk '$1=="known"{print $3}' "$base/runs" | median)
echo "pool/raw throughput (median MiB/s): $pool / $raw = $(echo "scale=2; $pool / $raw" | bc)"
echo "known/raw throughput (median MiB/s): $known / $raw = $(echo "scale=2; $known / $raw" | bc)"
