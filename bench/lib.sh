# Shared set-up of the stream and publish benchmarks; sourced, not run.
# Sets tools, sizes, base (a temp dir removed on exit) and m (a fresh
# mephstore binary), and defines run.
tools=${MEPHSTORE_SHARED_TOOLS:-$(cd .. && pwd)/shared/tools}
sizes=${SIZES:-4 40 200}
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-bench.XXXXXX")
trap 'chmod -R u+w "$base" 2>/dev/null; rm -rf "$base"' EXIT
go build -o "$base/mephstore" ./cmd/mephstore
m=$base/mephstore

# run LABEL CMD...: prints "LABEL seconds maxrss_MiB"
run() {
  local label=$1; shift
  /usr/bin/time -o "$base/time" -f '%e %M' "$@" >/dev/null 2>"$base/err" || { cat "$base/err" >&2; exit 1; }
  set -- $(cat "$base/time")
  printf '%s %s %s\n' "$label" "$1" "$(( $2 / 1024 ))"
}
