#!/usr/bin/env bash
# How the time of each stream operation grows with the stream: the same
# operations on two streams of 480 products, the second with 5x the
# versions (and items, and history) of the first; growth = seconds at 5x /
# seconds at 1x, medians of REPS runs on fresh copies of the store.
# Linear work grows at most about 5x; work that follows the change, not
# the stream, grows less.
#
#   bench/growth.sh [--versions V] [--reps N]   # V for the small stream (default 8; the large one 5V)
#
# Each stream is built one version per insert, so its history has V (or
# 5V) snapshots. Timed: query of every item (--json), diff across the last
# insert, log of the whole history (--json), promote of the newest version
# of every product into an empty stream, and a signed publish after an
# insert of one more version of one release's products (40 of 480),
# against a tree published before that insert.
set -euo pipefail
cd "$(dirname "$0")/.."
v=8 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --versions) v=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    *) echo "usage: bench/growth.sh [--versions V] [--reps N]" >&2; exit 2 ;;
  esac
done
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-growth.XXXXXX")
trap 'chmod -R u+w "$base" 2>/dev/null; rm -rf "$base"' EXIT
go build -o "$base/mephstore" ./cmd/mephstore
m=$base/mephstore
"$m" key generate --out "$base/key" >/dev/null
key=$base/key/signing-key.asc

# prepare V: $base/V/tree (V+1 versions), $base/V/store whose stream daily
# got versions 1..V one insert each, stream stable empty, daily published
# to $base/V/pub; then one more version of release 0's products inserted.
prepare() {
  local n=$1 d=$base/$1 i name
  mkdir -p "$d"
  "$m" dev make-tree "$d/tree" -- --releases 12 --arches 5 --kernels 8 --versions $((n + 1)) >/dev/null
  "$m" --store "$d/store" init >/dev/null
  "$m" --store "$d/store" stream create daily >/dev/null
  "$m" --store "$d/store" stream create stable >/dev/null
  for i in $(seq 0 $((n - 1))); do
    name=$(date -u -d "2024-01-01 + $i days" +%Y%m%d)
    "$m" --store "$d/store" insert --no-verify "$d/tree" daily "version_name=$name" >/dev/null
  done
  "$m" --store "$d/store" publish daily --publish-root "$d/pub" --sign-key "$key" >/dev/null
  newest=$(date -u -d "2024-01-01 + $n days" +%Y%m%d)
  release=$("$m" --store "$d/store" query daily --json | python3 -c 'import json,sys; print(sorted({i["release"] for i in json.load(sys.stdin)})[0])')
  "$m" --store "$d/store" insert --no-verify "$d/tree" daily "version_name=$newest" "release=$release" >/dev/null
  sync
}

# timed N OP CMD...: one run on a fresh copy of store and publish root
# (the command's {} is the copy's directory); appends "N OP seconds".
timed() {
  local n=$1 op=$2 c=$base/copy; shift 2
  rm -rf "$c"; mkdir "$c"
  cp -a "$base/$n/store" "$c/store"; cp -a "$base/$n/pub" "$c/pub"
  sync
  local args=("${@//\{\}/$c}")
  # Nanoseconds, not /usr/bin/time's hundredths: a small log or diff
  # takes under 10 ms.
  local t0 t1; t0=$(date +%s%N)
  "${args[@]}" >/dev/null 2>"$base/err" || { cat "$base/err" >&2; exit 1; }
  t1=$(date +%s%N)
  echo "$n $op $(echo "scale=4; ($t1 - $t0) / 1000000000" | bc)" >> "$base/runs"
}

: > "$base/runs"
for n in "$v" $((5 * v)); do
  echo "== $n versions: set-up" >&2
  prepare "$n"
  items=$("$m" --store "$base/$n/store" query daily --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  echo "$n items $items" >> "$base/runs"
  for r in $(seq "$reps"); do
    echo "== $n versions: run $r of $reps" >&2
    timed "$n" query "$m" --store {}/store query daily --json
    timed "$n" diff "$m" --store {}/store diff daily@1 daily
    timed "$n" log "$m" --store {}/store log daily --json
    timed "$n" promote "$m" --store {}/store promote daily stable "$(date -u -d "2024-01-01 + $((n - 1)) days" +%Y%m%d)"
    timed "$n" publish "$m" --store {}/store publish daily --publish-root {}/pub --sign-key "$key"
  done
done
python3 - "$base/runs" "$v" "$reps" "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
runs, v, reps, cores, kernel, load = sys.argv[1:]
v = int(v)
t, items = {}, {}
for line in open(runs):
    n, op, x = line.split()
    if op == "items":
        items[int(n)] = int(x)
    else:
        t.setdefault((int(n), op), []).append(float(x))
small, big = v, 5 * v
print(f"`bench/growth.sh --versions {v} --reps {reps}`: {cores} cores, Linux {kernel}, load average {load} at the end; medians.\n")
print(f"| op | {items[small]} items, {small + 1} inserts (s) | {items[big]} items, {big + 1} inserts (s) | growth |")
print("| --- | --- | --- | --- |")
for op in ["query", "diff", "log", "promote", "publish"]:
    a, b = statistics.median(t[(small, op)]), statistics.median(t[(big, op)])
    print(f"| {op} | {a:.3f} | {b:.3f} | {b / a:.1f}x |")
PY
