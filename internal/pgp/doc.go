// Package pgp reads OpenPGP keyrings and checks clear-signed simplestreams
// files, with github.com/ProtonMail/go-crypto/openpgp: the maintained
// successor of golang.org/x/crypto/openpgp, which is frozen and deprecated
// upstream (same API; Ed25519 keys, as gpg makes today, and current fixes).
package pgp
