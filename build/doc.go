// Package build makes MAAS boot images from cloud images.
//
// Every source (a root tarball, compressed with gzip, xz or zstd or not at
// all; a squashfs; a raw or qcow2 disk image whose root file system is
// ext4, bare or behind an MBR or GPT partition table) is read as one stream
// of normalised file-system entries: Source.Next returns them one at a
// time, with the contents of regular files readable until the next call.
// Sources are recognised by their first bytes, never by their names
// (Detect).
//
// A build reads the stream once. Each entry is written to a tar stream
// that tar2sqfs (squashfs-tools-ng) turns into the squashfs, and on the way
// the build keeps what it needs: the kernels, initrds and dtbs under /boot
// (staged into the pool as they pass) and /var/lib/dpkg/status, from which
// it picks each configured kernel package's files and writes the manifest.
// Memory stays bounded: nothing but the dpkg status file is held whole.
//
// What a build makes becomes a pending build: its blobs are in the pool,
// its products are recorded in cas.PendingBuilds with the references gc
// keeps, and the next publish of the stream commits it into a snapshot.
//
// Entries that would land outside the root (a ".." component, an absolute
// path, a hard link to such a path, or any path below a symbolic link the
// stream already holds) are refused with ErrEscape: nothing is written
// outside the store and its temp directory.
package build
