#!/usr/bin/env bash
# Ingest benchmark: mephstore ingest of a 1 GiB file next to cp + sync, and
# next to cp + sync + openssl dgst -sha256 (copy, then hash: two passes), in
# one run on the same disk. Prints the best and the median of ROUNDS runs of
# each (the disks of virtual machines stall now and then: the best run shows
# what each method costs, the median what to expect), the ratios of both,
# and mephstore's peak memory.
#
#   bench/ingest.sh                 # 1 GiB in $BENCH_DIR (default /var/tmp)
#   SIZE_MIB=4096 ROUNDS=5 bench/ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${SIZE_MIB:-1024}
rounds=${ROUNDS:-5}
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-bench.XXXXXX")
trap 'chmod -R u+w "$base" 2>/dev/null; rm -rf "$base"' EXIT
go build -o "$base/mephstore" ./cmd/mephstore
m=$base/mephstore

src=$base/src.bin
head -c "$((size_mib << 20))" /dev/urandom > "$src"
sync
cat "$src" > /dev/null   # every method starts with the source in the page cache

# t CMD...: wall seconds of CMD (with a sync before, outside the timing)
t() {
  sync
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
best() { sort -g | head -1; }

ingest_once() {
  rm -rf "$base/store"; "$m" --store "$base/store" init >/dev/null; sync
  t "$m" --store "$base/store" ingest "$src"
}
cp_sync() { rm -f "$base/copy"; sync; t sh -c "cp '$src' '$base/copy' && sync"; }
cp_sync_hash() { rm -f "$base/copy"; sync; t sh -c "cp '$src' '$base/copy' && sync && openssl dgst -sha256 '$base/copy'"; }

declare -a mi cs ch
for r in $(seq "$rounds"); do
  mi+=("$(ingest_once)"); cs+=("$(cp_sync)"); ch+=("$(cp_sync_hash)")
done
for k in best median; do
  declare "${k}_ingest=$(printf '%s\n' "${mi[@]}" | $k)"
  declare "${k}_cp=$(printf '%s\n' "${cs[@]}" | $k)"
  declare "${k}_cph=$(printf '%s\n' "${ch[@]}" | $k)"
done

# Peak memory of one more ingest (GNU time, max RSS in KiB).
rm -rf "$base/store"; "$m" --store "$base/store" init >/dev/null; sync
rss_kib=$(/usr/bin/time -f '%M' "$m" --store "$base/store" ingest "$src" 2>&1 >/dev/null | tail -1)

# Check the digest against sha256sum while we are here.
want="sha256:$(sha256sum "$src" | cut -d' ' -f1)"
got=$("$m" --store "$base/store" ingest "$src" | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "digest mismatch: $got vs $want" >&2; exit 1; }

printf 'ingest of %d MiB, %d runs each (%s, %d cores)\n' "$size_mib" "$rounds" "$(uname -r)" "$(nproc)"
printf '  %-34s %8s %8s %10s\n' "" best median "MiB/s best"
row() { printf '  %-34s %7.2fs %7.2fs %10.0f\n' "$1" "$2" "$3" "$(echo "$size_mib / $2" | bc -l)"; }
row "mephstore ingest" "$best_ingest" "$median_ingest"
row "cp + sync" "$best_cp" "$median_cp"
row "cp + sync + openssl dgst -sha256" "$best_cph" "$median_cph"
printf '  %-34s %7.2fx %7.2fx\n' "ratio ingest / (cp + sync)" "$(echo "$best_ingest / $best_cp" | bc -l)" "$(echo "$median_ingest / $median_cp" | bc -l)"
printf '  %-34s %7.2fx %7.2fx\n' "ratio ingest / (cp + sync + openssl)" "$(echo "$best_ingest / $best_cph" | bc -l)" "$(echo "$median_ingest / $median_cph" | bc -l)"
printf '  peak memory of mephstore ingest    %5.1f MiB\n' "$(echo "$rss_kib / 1024" | bc -l)"
