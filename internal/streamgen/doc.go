// Package streamgen writes MAAS v3 simplestreams trees for tests, the demo
// and the benchmarks: any number of releases x arches x kernels products,
// each with versions of boot-kernel, boot-initrd, squashfs and manifest
// items whose files hold seeded random bytes with their real sizes and
// checksums, signed (clear-signed .sjson and detached .json.gpg) with a key
// of internal/pgp, or deliberately broken in one named way (Breaks).
//
// The layout is the one of images.maas.io's ephemeral-v3 trees:
//
//	streams/v1/index.json, index.sjson, index.json.gpg
//	streams/v1/com.ubuntu.maas:<stream>:v3:download.json, .sjson, .json.gpg
//	<release>/<arch>/<version>/squashfs, squashfs.manifest
//	<release>/<arch>/<version>/<subarch dir>/<flavor>/boot-kernel, boot-initrd
//
// The command-line flags (ParseArgs) are those of the shared
// make-test-stream tool, which writes the same trees; mephstore needs
// neither it nor gpg.
package streamgen
