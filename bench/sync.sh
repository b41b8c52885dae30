#!/usr/bin/env bash
# Benchmarks of mephstore sync, served over loopback by mephstore serve:
#   plan: planning against a large upstream (RELEASES x 6 arches x VERSIONS,
#         metadata only; default 20 x 6 x 400 = 48,000 versions), a dry run:
#         wall time and peak RSS;
#   fake: a --fake-builder sync of IMAGES images end to end (real small
#         upstream images fetched and checked, fake roots built, one
#         commit): wall time, images per second, peak RSS;
#   again: the same sync once more (nothing new: plan only).
# There is no reference to compare with: meph2-cloudimg-sync needs the
# network and real Ubuntu releases; the figures stand alone.
# Usage: bench/sync.sh   (RELEASES, VERSIONS, IMAGES to change the sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
releases=${RELEASES:-20}
versions=${VERSIONS:-400}
images=${IMAGES:-100}
arches6=amd64,arm64,armhf,i386,ppc64el,s390x

# serve DIR: starts mephstore serve on a free port; sets url.
serve() {
  "$m" serve --publish-root "$1" --addr 127.0.0.1:0 >"$base/serve.out" 2>&1 &
  spid=$!
  for _ in $(seq 100); do
    url=$(sed -n 's#.* on \(http://[^ ]*/\) .*#\1#p' "$base/serve.out")
    [ -n "$url" ] && return
    sleep 0.1
  done
  echo "serve did not start" >&2; exit 1
}

"$m" dev make-cloud-tree --releases "$releases" --arches "$arches6" --versions "$versions" --metadata-only "$base/big" >/dev/null
serve "$base/big"
"$m" --store "$base/s1" init --reserve 0 >/dev/null
"$m" --store "$base/s1" stream create daily >/dev/null
echo "what seconds maxrss_MiB"
run "plan($releases*6*$versions)" "$m" --store "$base/s1" sync --no-verify --dry-run --source "${url}streams/v1/index.json" \
  --config "$base/big/config.yaml" --arches "$arches6"
kill $spid

per=$(( (images + 3) / 4 ))   # 2 releases x 2 arches
"$m" dev make-cloud-tree --releases 2 --arches amd64,arm64 --versions "$per" "$base/small" >/dev/null
serve "$base/small"
"$m" --store "$base/s2" init --reserve 0 >/dev/null
"$m" --store "$base/s2" stream create daily >/dev/null
args=(--store "$base/s2" sync --no-verify --fake-builder --max "$per" --source "${url}streams/v1/index.json" --config "$base/small/config.yaml" --arches amd64,arm64 -j 2)
line=$(run "fake($((per * 4)))" "$m" "${args[@]}")
echo "$line"
set -- $line
echo "fake builds: $(echo "scale=1; $((per * 4)) / $2" | bc) images/s"
run "again(nothing new)" "$m" "${args[@]}"
kill $spid
