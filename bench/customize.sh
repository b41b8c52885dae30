#!/usr/bin/env bash
# Customised build benchmark (as root, with the network): a debootstrap
# --variant=minbase bookworm root as .tar.xz (the end-to-end test's, cached
# in /var/cache/mephstore-e2e), built by mephstore with linux-image-amd64
# installed and the initramfs modules changed; then the same steps by hand
# with the standard tools (tar, chroot apt-get, update-initramfs, tar2sqfs,
# sha256sum), in one run. Prints both breakdowns.
#
#   sudo bench/customize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "bench/customize.sh: needs root (chroot, mounts)" >&2; exit 1; }
cache=${MEPHSTORE_E2E_CACHE:-/var/cache/mephstore-e2e}
src=$cache/bookworm-minbase.tar.xz
if [ ! -f "$src" ]; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  mkdir -p "$cache"
  echo "== debootstrap bookworm minbase (set-up, not timed)"
  debootstrap --variant=minbase bookworm "$base/mb" "$mirror" >/dev/null
  tar --numeric-owner --xattrs -C "$base/mb" -cf - . | xz -T0 -3 > "$src.tmp" && mv "$src.tmp" "$src"
  rm -rf "$base/mb"
fi
# The end-to-end test's config, with the benchmark's xz squashfs.
sed 's/^compressor: gzip/compressor: xz/' testdata/bookworm-e2e.yaml > "$base/config.yaml"
store=$base/store
"$m" --store "$store" init >/dev/null
"$m" --store "$store" stream create daily >/dev/null
echo "== mephstore build (xz squashfs, 2 jobs)"
start=$(date +%s.%N)
"$m" --store "$store" build --json --jobs 2 --config "$base/config.yaml" amd64 bookworm 20261122 "$src" > "$base/build.json"
end=$(date +%s.%N)
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for s in r["steps"]:
    print("  %-10s %7.1f s" % (s["name"], s["seconds"]))
print("  %-10s %7.1f s" % ("total", float(sys.argv[3]) - float(sys.argv[2])))
' "$base/build.json" "$start" "$end"

echo "== by hand: tar, chroot apt-get, update-initramfs, tar2sqfs, sha256sum"
root=$base/by-hand
step() { local t0=$(date +%s.%N); "$@" >/dev/null 2>&1; printf '  %-10s %7.1f s\n' "$label" "$(echo "$(date +%s.%N) - $t0" | bc -l)"; }
t_all=$(date +%s.%N)
mkdir -p "$root"
label=unpack step tar --numeric-owner --xattrs --xattrs-include='*' -C "$root" -xJf "$src"
mount -t proc proc "$root/proc"; mount -t sysfs sysfs "$root/sys"; mount --bind /dev "$root/dev"
trap 'umount "$root/proc" "$root/sys" "$root/dev" 2>/dev/null; chmod -R u+w "$base" 2>/dev/null; rm -rf "$base"' EXIT
cp /etc/resolv.conf "$root/etc/resolv.conf"
label=apt step chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get -q update && apt-get -q -y install linux-image-amd64'
label=customize step chroot "$root" sh -c "printf 'squashfs\nvirtio_blk\nvirtio_pci\n' >> /etc/initramfs-tools/modules"
label=initramfs step chroot "$root" update-initramfs -u -k all
label=apt-clean step chroot "$root" apt-get clean
umount "$root/proc" "$root/sys" "$root/dev"
label=squashfs step sh -c "tar --numeric-owner --xattrs -C '$root' -cf - . | tar2sqfs --quiet --force --compressor xz --num-jobs 2 '$base/by-hand.sqfs'"
label=ingest step sha256sum "$base/by-hand.sqfs"
printf '  %-10s %7.1f s\n' total "$(echo "$(date +%s.%N) - $t_all" | bc -l)"
