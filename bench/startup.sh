#!/usr/bin/env bash
# Start-up of mephstore: `mephstore --help`, and a no-op command on an empty
# store (`stream list`), next to /bin/true (what starting any process
# costs here), each run RUNS times (default 50); prints the median and best
# wall time.
#
#   bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-startup.XXXXXX")
trap 'rm -rf "$base"' EXIT
go build -o "$base/mephstore" ./cmd/mephstore
"$base/mephstore" --store "$base/store" init >/dev/null
python3 - "$runs" "$base/mephstore" "$base/store" <<'PY'
import os, resource, statistics, subprocess, sys, time
runs, m, store = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cases = [("/bin/true", ["/bin/true"]),
         ("mephstore --help", [m, "--help"]),
         ("mephstore stream list (empty store)", [m, "--store", store, "stream", "list"])]
print(f"start-up, {runs} runs each ({os.cpu_count()} cores, Linux {os.uname().release})")
print(f"{'command':40} {'median ms':>10} {'best ms':>8}")
for name, argv in cases:
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
        _, status = os.waitpid(pid, 0)
        walls.append(time.perf_counter() - t)
        if status != 0:
            sys.exit(f"startup.sh: {name} failed ({status})")
    print(f"{name:40} {statistics.median(walls)*1e3:10.1f} {min(walls)*1e3:8.1f}")
PY
