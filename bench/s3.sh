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
vgw=${MEPHSTORE_VERSITYGW:-$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")}
[ -x "$vgw" ] || { echo "s3.sh: versitygw not found (scripts/deps installs it)" >&2; exit 1; }
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-s3bench.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$base/data/bench"
ROOT_ACCESS_KEY=bench ROOT_SECRET_KEY=benchsecret "$vgw" --port "127.0.0.1:$port" --quiet posix "$base/data" >"$base/vgw.log" 2>&1 &
vpid=$!
trap 'kill $vpid 2>/dev/null; wait $vpid 2>/dev/null; rm -rf "$base"' EXIT
go build -o "$base/s3put" ./bench/s3put
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port" && break; sleep 0.05; done
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $size MiB, versitygw posix on $(df -T "$base" | awk 'NR==2{print $2}')"
echo "# mode seconds MiB/s peak_RSS_MiB"
for i in $(seq "$reps"); do
  for mode in raw pool known; do
    sync
    /usr/bin/time -o "$base/time" -f '%M' "$base/s3put" "$mode" "http://127.0.0.1:$port" bench "$size" | tr '\n' ' '
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
