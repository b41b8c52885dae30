#!/usr/bin/env bash
# Build benchmark: mephstore build from an uncompressed root tarball of a
# debootstrapped Debian root with a kernel, against tar2sqfs alone on the
# same tar and mksquashfs -processors 2 on the same tree, all with xz, in
# one run. The goal: the whole build (squashfs, kernel, initrd, manifest,
# ingest) within 1.15x of tar2sqfs alone, peak memory under 256 MB.
#
#   ROOTFS=/var/tmp/rootfs bench/build.sh   # a root made beforehand
#   bench/build.sh                          # makes one with debootstrap (root, minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rootfs=${ROOTFS:-$base/rootfs}
if [ ! -d "$rootfs/var/lib/dpkg" ]; then
  command -v debootstrap >/dev/null || { echo "bench/build.sh: needs debootstrap (apt-get install debootstrap) or ROOTFS=DIR" >&2; exit 1; }
  # The mirror this machine's apt uses.
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  echo "== debootstrap bookworm into $rootfs (set-up, not timed)"
  debootstrap --variant=minbase --include=linux-image-amd64,systemd,udev,openssh-server,cloud-init,python3 bookworm "$rootfs" "$mirror" >/dev/null
fi
tarball=$base/root.tar
tar --numeric-owner --xattrs --acls -C "$rootfs" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
  --exclude=./var/cache/apt/archives/*.deb -cf "$tarball" .
echo "root tarball: $(du -m "$tarball" | cut -f1) MiB, $(tar -tf "$tarball" | wc -l) entries"
kpkg=$(sed -n 's/^Package: \(linux-image-amd64\)$/\1/p' "$rootfs/var/lib/dpkg/status" | head -1)
cat > "$base/config.yaml" <<YAML
releases:
  - release: bookworm
    version: "12.0"
    os: debian
    release_title: "Debian 12"
    release_codename: Bookworm
    support_eol: "2028-06-30"
    support_esm_eol: "2028-06-30"
    kernels:
      - [bookworm, amd64, ga-12, generic, ${kpkg:-linux-image-amd64}, [generic]]
YAML
store=$base/store
"$m" --store "$store" init >/dev/null
"$m" --store "$store" stream create daily >/dev/null
sync
t2s=$(run "tar2sqfs -c xz -j 2 < root.tar" sh -c "tar2sqfs --quiet --force --compressor xz --num-jobs 2 '$base/t2s.sqfs' < '$tarball'")
mks=$(run "mksquashfs -comp xz -processors 2" mksquashfs "$rootfs" "$base/mks.sqfs" -comp xz -processors 2 -noappend -quiet -e proc sys dev var/cache/apt/archives)
bld=$(run "mephstore build (root.tar)" "$m" --store "$store" build --config "$base/config.yaml" --jobs 2 amd64 bookworm 20261122 "$tarball")
echo "run seconds RSS_MiB"
printf '%s\n' "$t2s" "$mks" "$bld"
sec() { echo "$1" | awk '{print $(NF-1)}'; }
printf '%-40s %8.2fx\n' "build / tar2sqfs" "$(echo "$(sec "$bld") / $(sec "$t2s")" | bc -l)"
printf '%-40s %8.2fx\n' "build / mksquashfs" "$(echo "$(sec "$bld") / $(sec "$mks")" | bc -l)"
echo "squashfs sizes: tar2sqfs $(du -m "$base/t2s.sqfs" | cut -f1) MiB, mksquashfs $(du -m "$base/mks.sqfs" | cut -f1) MiB"
"$m" --store "$store" builds
