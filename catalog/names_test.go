package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"com.ubuntu.maas:daily:v3:download", true},
		{"com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04", true},
		{"com.ubuntu.maas:daily:1:bootloader-download:grub-efi-signed:uefi:amd64", true},
		{"com.ubuntu.cloud:server:24.04:amd64", true},
		{"20240615.1", true},
		{"20160201_01", true},
		{"boot-kernel", true},
		{"root-image.gz", true},
		{"1.0~rc1+dfsg", true},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"-rf", false},
		{"com.ubuntu.maas:../../x", false},
		{"a/b", false},
		{"a\\b", false},
		{"a b", false},
		{"a\nb", false},
		{"a\x00b", false},
		{"naïve", false},
		{strings.Repeat("a", MaxNameLen), true},
		{strings.Repeat("a", MaxNameLen+1), false},
	} {
		err := CheckName("version name", tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrBadMetadataName) || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "version name ")) {
			t.Errorf("%q: error %q", tc.name, err)
		}
	}
}

func TestItemPaths(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"noble/amd64/20240615/ga-24.04/generic/boot-kernel", true},
		{"server/releases/noble/release-20240615/ubuntu-24.04-server-cloudimg-amd64.img", true},
		{"bootloaders/uefi/amd64/20210819.0/grub2-signed.tar.xz", true},
		{"a", true},
		{"", false},
		{"/etc/passwd", false},
		{"../outside", false},
		{"a/../../b", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{"a/.hidden/b", false},
		{"http://host/x", false},
		{"a?b", false},
		{strings.Repeat("a/", MaxPathLen/2) + "a", false},
	} {
		err := CheckItemPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadMetadataName) && !errors.Is(err, ErrBadPath) {
			t.Errorf("%q: error %v wraps neither ErrBadMetadataName nor ErrBadPath", tc.path, err)
		}
	}
}
