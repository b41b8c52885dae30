// Package cloudgen writes, for tests and benchmarks, a simplestreams tree
// shaped like the cloud-images download stream that `mephstore sync` reads
// (content id com.ubuntu.cloud:daily:download, datatype image-downloads,
// one product per release and arch, each version with a squashfs and a
// tar.gz item): real small images (build.FakeRoot, packed by tar2sqfs and
// gzip), signed with a given key, or broken in one named way.
package cloudgen
