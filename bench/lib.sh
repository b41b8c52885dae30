# Shared set-up of the stream and publish benchmarks; sourced, not run.
# Sets sizes, base (a temp dir removed on exit) and m (a fresh mephstore
# binary), and defines run and mktree (test trees from mephstore's own
# generator: make-test-stream's flags).
sizes=${SIZES:-4 40 200}
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mephstore-bench.XXXXXX")
trap 'chmod -R u+w "$base" 2>/dev/null; rm -rf "$base"' EXIT
go build -o "$base/mephstore" ./cmd/mephstore
m=$base/mephstore

# mktree OUT [GENERATOR FLAGS]: writes an unsigned test tree.
mktree() {
  local out=$1; shift
  "$m" dev make-tree "$out" -- "$@" >/dev/null
}

# run LABEL CMD...: prints "LABEL seconds maxrss_MiB"
run() {
  local label=$1; shift
  /usr/bin/time -o "$base/time" -f '%e %M' "$@" >/dev/null 2>"$base/err" || { cat "$base/err" >&2; exit 1; }
  set -- $(cat "$base/time")
  printf '%s %s %s\n' "$label" "$1" "$(( $2 / 1024 ))"
}

# prepare V: a tree of 480 products with V+1 versions each, and a store whose
# stream daily holds every version but the newest (set-up, not timed).
# Sets tree, newest, store and items.
prepare() {
  local v=$1
  tree=$base/tree-$v
  mktree "$tree" --releases 12 --arches 5 --kernels 8 --versions $((v + 1))
  newest=$(date -u -d "2024-01-01 + $v days" +%Y%m%d)
  store=$base/store-$v
  "$m" --store "$store" init >/dev/null
  "$m" --store "$store" stream create daily >/dev/null
  "$m" --store "$store" insert --no-verify "$tree" daily "version_name!=$newest" >/dev/null
  items=$((480 * 4 * v))
  sync
}
