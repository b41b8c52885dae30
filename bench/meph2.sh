#!/usr/bin/env bash
# mephstore against the real meph2-util, side by side in the same run: the
# same generated trees (../shared/reference/bench/gen-stream.py), each step
# run by both tools, alternating which goes first, warm cache, an untimed
# sync before each run, median of REPS runs. Writes results.md and
# results.json (wall and CPU seconds, peak RSS, the ratio meph2-util /
# mephstore, the machine, its load and the date) to OUT.
#
#   bench/meph2.sh [--sizes S,M,L] [--reps N] [--out DIR]
#
# S = 7.7k items (480 products x 4 versions x 4 items), M = 77k (40
# versions), L = 403k (210). Steps (the reference README's commands):
# insert of one new version of every product, promote of it to another
# stream, clean-md to 3 versions, find-orphans and reap-orphans on the
# cleaned tree (and their floors: a find -type f of the tree; rm of the
# same files + one sync; and the same work as a reap by hand: rm of the
# same files, rmdir of the directories left empty + one sync), and a
# signed publish (meph2-util sign): into a new root (sign), and into the
# root that holds the stream as it was before clean-md
# (sign-existing-root: like the tree meph2-util signs, the data is there;
# its ratio is against meph2-util's sign).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=S,M reps=3 out=bench/results
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: bench/meph2.sh [--sizes S,M,L] [--reps N] [--out DIR]" >&2; exit 2 ;;
  esac
done
shared=${MEPHSTORE_SHARED:-../shared}
ref=$shared/reference
[ -f "$ref/bench/gen-stream.py" ] && [ -d "$ref/maas-images" ] ||
  { echo "meph2.sh: the shared reference tools are not at $ref (set MEPHSTORE_SHARED)" >&2; exit 1; }
ref=$(cd "$ref" && pwd)
export PYTHONPATH=$ref/simplestreams:$ref/maas-images
gen() { python3 "$ref/bench/gen-stream.py" --updated "Wed, 01 Jan 2025 00:00:00 +0000" "$@" >/dev/null; }
m2=(python3 "$ref/maas-images/bin/meph2-util")
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-vs-meph2.XXXXXX")
trap 'chmod -R u+w "$base" 2>/dev/null; rm -rf "$base"' EXIT
go build -o "$base/mephstore" ./cmd/mephstore
m=$base/mephstore
mkdir -p "$out"

# A signing key both tools use: mephstore's key file, imported into a
# GNUPGHOME for meph2-util (SS_GPG_DEFAULT_KEY).
"$m" key generate --out "$base/key" >/dev/null
export GNUPGHOME=$base/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --import "$base/key/signing-key.asc" 2>/dev/null
fpr=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1=="fpr"{print $10; exit}')

# timed TOOL OP CMD...: runs CMD after an untimed sync; appends
# "size op tool wall user+sys rss_kib" to $base/runs.
timed() {
  local tool=$1 op=$2; shift 2
  sync
  /usr/bin/time -o "$base/time" -f '%e %U %S %M' "$@" >"$base/out" 2>&1 ||
    { echo "meph2.sh: $tool $op failed:" >&2; tail -5 "$base/out" >&2; exit 1; }
  read -r wall usr sys rss < "$base/time"
  echo "$size $op $tool $wall $(echo "$usr + $sys" | bc) $rss" >> "$base/runs"
}

# age ORPHANS: dates every entry of an orphan file in 2025, so that
# --older 0s reaps them all (meph2-util compares whole seconds: a reap in
# the second of the find reaped nothing).
age() {
  python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); json.dump({k: "Wed, 01 Jan 2025 00:00:00 +0000" for k in d}, open(p, "w"))' "$1"
}

# left TOOL DIR: the files reap-orphans left; both tools must leave the same.
left() {
  local n; n=$(find "$2" -type f | wc -l)
  local f=$base/left.$size
  if [ -f "$f" ] && [ "$(cat "$f")" != "$n" ]; then
    echo "meph2.sh: $1 reap-orphans left $n files, the other tool $(cat "$f")" >&2; exit 1
  fi
  echo "$n" > "$f"
}

versions_of() { case $1 in S) echo 4 ;; M) echo 40 ;; L) echo 210 ;; *) echo "meph2.sh: size $1: S, M or L" >&2; exit 2 ;; esac; }

# prepare SIZE: the trees and the store every run starts from (untimed).
prepare() {
  local v; v=$(versions_of "$1")
  d=$base/$1
  mkdir -p "$d"
  gen --out "$d/base" --versions "$v"
  gen --out "$d/build" --versions 1 --first-version "$v"
  serial=$(date -u -d "2025-01-01 + $((7 * v)) days" +%Y%m%d)
  # The cleaned tree find-orphans, reap-orphans and sign start from: the
  # base with the new version inserted and cleaned to 3 versions.
  cp -a "$d/base" "$d/cleaned"
  "${m2[@]}" insert --no-sign "$d/build/streams/v1/index.json" "$d/cleaned/" >/dev/null 2>&1
  "${m2[@]}" clean-md --no-sign 3 "$d/cleaned/streams/v1/index.json" >/dev/null 2>&1
  "$m" --store "$d/store" init >/dev/null
  "$m" --store "$d/store" stream create candidate >/dev/null
  "$m" --store "$d/store" stream create stable >/dev/null
  "$m" --store "$d/store" insert --no-verify "$d/base" candidate >/dev/null
  # The scheduled gc of a store in use: it also merges the database tables
  # the insert's writer sessions left, which a timed step would otherwise
  # merge in the middle of a run (every run from the same copy, the same one).
  "$m" --store "$d/store" gc --older 3d >/dev/null
}

# Each tool's steps come in two phases: those that create files (insert,
# promote, clean-md, sign), then those that delete them (find-orphans,
# reap-orphans and their floors). Every size and rep runs the first phase
# before any runs the second, and the trees are removed only at the end
# (about 30 GiB at S,M,L with 3 reps):
# on an ext4 without a journal (this project's CI and bench VMs) the inode
# allocator skips, and reads the inode table block of, every recently
# freed inode, so a step that creates files right after a large delete
# pays for the delete (measured: an insert at M 0.36-0.43 s after a quiet
# spell, 0.74 s right after a delete of a store copy). Start on a file
# system that has had no large delete for a few minutes.
create_meph2() {
  local r=$1
  cp -a "$d/base" "$r/W"; mkdir "$r/S"
  timed meph2-util insert "${m2[@]}" insert --no-sign "$d/build/streams/v1/index.json" "$r/W/"
  timed meph2-util promote "${m2[@]}" promote --no-sign "$r/W/streams/v1/index.json" "$r/S/" "$serial"
  timed meph2-util clean-md "${m2[@]}" clean-md --no-sign 3 "$r/W/streams/v1/index.json"
  cp -a "$d/cleaned" "$r/P"
  timed meph2-util sign env SS_GPG_DEFAULT_KEY="$fpr" python3 "$ref/maas-images/bin/meph2-util" sign "$r/P/"
}

# The trees of the second phase are copied in it (untimed), so that they
# are in the cache as the first phase's were.
delete_meph2() {
  local r=$1
  cp -a "$d/cleaned" "$r/C"
  cp -a "$d/cleaned" "$r/F"
  cp -a "$d/cleaned" "$r/G"
  # The floor of find-orphans: listing the same tree (names and types,
  # no stat), which no tool that finds unreferenced files can skip.
  timed floor find-orphans find "$r/C" -type f
  timed meph2-util find-orphans "${m2[@]}" find-orphans "$r/orphans.json" "$r/C/" "$r/C/streams/v1/index.json"
  cp "$r/orphans.json" "$r/orphans.found"
  age "$r/orphans.json"
  timed meph2-util reap-orphans "${m2[@]}" reap-orphans --older 0s "$r/orphans.json" "$r/C/"
  left meph2-util "$r/C"
  # The floor of reap-orphans: rm of the same files, then one sync.
  python3 -c 'import json,sys; sys.stdout.write("".join(p + "\0" for p in json.load(open(sys.argv[1]))))' \
    "$r/orphans.found" > "$r/F.list"
  timed floor reap-orphans sh -c 'cd "$1" && xargs -0 rm -f < "$2" && sync' sh "$r/F" "$r/F.list"
  # The same work as a reap, by hand: rm of the same files, rmdir of the
  # directories that leaves empty (both tools remove them), one sync.
  timed floor-rmdir reap-orphans sh -c 'cd "$1" && xargs -0 rm -f < "$2" && find . -mindepth 1 -type d -empty -delete && sync' sh "$r/G" "$r/F.list"
  left floor-rmdir "$r/G"
}

create_mephstore() {
  local r=$1 s=$1/store
  cp -a "$d/store" "$s"
  timed mephstore insert "$m" --store "$s" insert --no-verify "$d/build" candidate
  timed mephstore promote "$m" --store "$s" promote candidate stable "$serial"
  "$m" --store "$s" publish candidate --publish-root "$r/pub-before" --sign-key "$base/key/signing-key.asc" >/dev/null
  timed mephstore clean-md "$m" --store "$s" clean-md candidate --max 3
  timed mephstore sign "$m" --store "$s" publish candidate --publish-root "$r/pub" --sign-key "$base/key/signing-key.asc"
  # meph2-util signs a tree whose data is in place; the same for mephstore
  # is a publish into the root that holds the stream before clean-md.
  timed mephstore sign-existing-root "$m" --store "$s" publish candidate --publish-root "$r/pub-before" --sign-key "$base/key/signing-key.asc"
}

delete_mephstore() {
  local r=$1
  cp -a "$d/cleaned" "$r/C"
  timed mephstore find-orphans "$m" find-orphans "$r/orphans.json" "$r/C" "$r/C/streams/v1/index.json"
  age "$r/orphans.json"
  timed mephstore reap-orphans "$m" reap-orphans --older 0s "$r/orphans.json" "$r/C"
  left mephstore "$r/C"
}

: > "$base/runs"
# runs PHASE SIZE: every rep of one phase at one size, alternating which
# tool goes first.
runs() {
  local phase=$1 i tool order r
  size=$2 d=$base/$2
  for i in $(seq "$reps"); do
    echo "== $size: $phase, run $i of $reps" >&2
    order="meph2 mephstore"
    [ $((i % 2)) = 0 ] && order="mephstore meph2"
    for tool in $order; do
      r=$base/$size/run-$i-$tool
      mkdir -p "$r"
      "${phase}_$tool" "$r"
    done
  done
}
for size in ${sizes//,/ }; do
  echo "== $size: generating trees" >&2
  prepare "$size"
  runs create "$size"
done
for size in ${sizes//,/ }; do runs delete "$size"; done

# Medians per size, step and tool; the machine; then the two files.
load=$(cut -d' ' -f1-3 /proc/loadavg)
mem=$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cmdline="bench/meph2.sh --sizes $sizes --reps $reps"
fs="$(findmnt -no FSTYPE -T "$base") ($(findmnt -no OPTIONS -T "$base"))"
python3 - "$base/runs" "$out" "$stamp" "$(nproc)" "$mem" "$(uname -r)" "$load" "$cmdline" "$fs" <<'PY'
import json, statistics, sys
runs, out, stamp, cores, mem, kernel, load, cmd, fs = sys.argv[1:]
rows = {}
for line in open(runs):
    size, op, tool, wall, cpu, rss = line.split()
    rows.setdefault((size, op), {}).setdefault(tool, []).append((float(wall), float(cpu), int(rss)))
med = lambda xs, i: statistics.median(x[i] for x in xs)
res = []
for (size, op), tools in rows.items():
    e = {"size": size, "op": op}
    for tool, xs in tools.items():
        e[tool] = {"wall_s": med(xs, 0), "cpu_s": med(xs, 1), "peak_rss_mib": round(max(x[2] for x in xs) / 1024, 1), "runs": len(xs)}
    a, b = e.get("meph2-util"), e.get("mephstore")
    if a is None and op == "sign-existing-root":
        # Its counterpart is meph2-util's sign (of a tree with its data).
        xs = rows.get((size, "sign"), {}).get("meph2-util")
        a = {"wall_s": med(xs, 0)} if xs else None
    e["ratio"] = round(a["wall_s"] / b["wall_s"], 1) if a and b and b["wall_s"] > 0 else None
    res.append(e)
doc = {"date": stamp, "command": cmd, "machine": {"cores": int(cores), "memory": mem, "kernel": kernel, "file_system": fs, "load_average": load}, "results": res}
json.dump(doc, open(out + "/results.json", "w"), indent=1)
with open(out + "/results.md", "w") as f:
    f.write(f"`{cmd}` on {stamp}: {cores} cores, {mem}, Linux {kernel}, {fs}, load average {load} at the end.\n")
    f.write("Medians; ratio = meph2-util seconds / mephstore seconds (same run, alternating).\n\n")
    f.write("| size | step | meph2-util s (cpu s, RSS MiB) | mephstore s (cpu s, RSS MiB) | ratio |\n| --- | --- | --- | --- | --- |\n")
    for e in res:
        cell = lambda t: "%.2f (%.2f, %.0f)" % (e[t]["wall_s"], e[t]["cpu_s"], e[t]["peak_rss_mib"]) if t in e else "-"
        f.write(f"| {e['size']} | {e['op']} | {cell('meph2-util')} | {cell('mephstore')} | {e['ratio']}x |\n")
    if any(e["op"] == "sign-existing-root" for e in res):
        f.write("\nsign-existing-root: mephstore's publish into the root holding the stream before clean-md, against meph2-util's sign.\n")
    floors = {("reap-orphans", "floor"): "rm of the same files + one sync",
              ("reap-orphans", "floor-rmdir"): "rm of the same files, rmdir of the directories left empty + one sync",
              ("find-orphans", "floor"): "find -type f of the same tree"}
    for e in res:
        for (op, fl), what in floors.items():
            if e["op"] == op and fl in e:
                f.write(f"\n{e['size']} {op} {fl} ({what}): {e[fl]['wall_s']:.2f} s; "
                        f"mephstore / {fl} = {e['mephstore']['wall_s'] / e[fl]['wall_s']:.2f}x\n")
PY
cat "$out/results.md"
