// Package verify checks a published simplestreams tree the way MAAS and
// the reference python client read it: the index and every products file
// it lists (clear-signed by a key of the keyring when one is given, with
// the rules gpgv applies), the fields those readers need, and every
// selected item's file: its size and sha256 (and md5 when given), streamed
// and never held in memory. A tree is a directory or an http(s) URL.
//
// Problems are collected, not returned: Verify returns an error only when
// it cannot start (no such directory, an unusable keyring). Each problem
// names the check, the product, version and item, and the reason.
package verify
