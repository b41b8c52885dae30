#!/usr/bin/env bash
# Start-up of mephstore: `mephstore --help`, and a no-op command on an empty
# store (`stream list`), next to its floors measured in the same run:
# /bin/true (what starting any process costs here), a Go "hello world",
# the same linking net/http, and the same linking badger (bench/startup/:
# what the Go runtime and those dependencies cost before any of
# mephstore's code runs). Each runs RUNS times (default 50), the cases
# taking turns; prints the median and best wall time.
#
#   bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-startup.XXXXXX")
trap 'rm -rf "$base"' EXIT
go build -o "$base/mephstore" ./cmd/mephstore
for p in hello nethttp badger; do go build -o "$base/$p" "./bench/startup/$p"; done
"$base/mephstore" --store "$base/store" init >/dev/null
python3 - "$runs" "$base" <<'PY'
import os, statistics, sys, time
runs, base = int(sys.argv[1]), sys.argv[2]
m, store = f"{base}/mephstore", f"{base}/store"
cases = [("/bin/true", ["/bin/true"]),
         ("go: hello world", [f"{base}/hello"]),
         ("go: hello world + net/http", [f"{base}/nethttp"]),
         ("go: hello world + badger", [f"{base}/badger"]),
         ("mephstore --help", [m, "--help"]),
         ("mephstore stream list (empty store)", [m, "--store", store, "stream", "list"])]
walls = {name: [] for name, _ in cases}
for _ in range(runs):
    for name, argv in cases:
        t = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
        _, status = os.waitpid(pid, 0)
        walls[name].append(time.perf_counter() - t)
        if status != 0:
            sys.exit(f"startup.sh: {name} failed ({status})")
print(f"start-up, {runs} runs each, taking turns ({os.cpu_count()} cores, Linux {os.uname().release})")
print(f"{'command':40} {'median ms':>10} {'best ms':>8}")
for name, _ in cases:
    print(f"{name:40} {statistics.median(walls[name])*1e3:10.1f} {min(walls[name])*1e3:8.1f}")
PY
