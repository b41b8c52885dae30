// Package build will read source images as one stream of filesystem entries
// and build kernels, initrds, squashfs and manifests from them. Not built
// yet: see issues 6 and 7.
package build
