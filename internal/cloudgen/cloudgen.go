package cloudgen

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/internal/fsx"
	"github.com/mephstore/mephstore/internal/pgp"
)

// ContentID is the content id of the trees written here.
const ContentID = "com.ubuntu.cloud:daily:download"

// Spec says what to write.
type Spec struct {
	Config   *build.Config // releases come from it (FakeRoot needs their rows)
	Releases []string
	Arches   []string
	Versions []string    // upstream version names, e.g. 20261201
	Signer   *pgp.Signer // nil: unsigned (index.json only)
	// TarOnly lists versions that have a tar.gz item and no squashfs.
	TarOnly []string
	// Break breaks one image, keyed "release/arch/version": "sha256",
	// "size", "missing" (its file deleted), "dotdot-path", "abs-path".
	Break map[string]string
	// Hostile breaks the whole tree: "not-json" (the products file),
	// "tamper" (edited after signing), "version-name" (every version is
	// named like 2026-12-01).
	Hostile string
	// Metadata only: write the metadata with made-up sizes and sums and
	// no image files (for planning benchmarks of huge trees).
	MetadataOnly bool
}

// TestConfig is a build config for the trees of the tests: noble (amd64
// and arm64) and jammy (amd64 only: its arm64 products are not built),
// one kernel row each, with the distro-info fields set.
const TestConfig = `
kname: "%(subarch)s"
releases:
  - release: noble
    version: "24.04"
    release_title: "24.04 LTS"
    release_codename: Noble Numbat
    support_eol: "2029-05-31"
    support_esm_eol: "2036-04-09"
    kernels:
      - [noble, amd64, ga-24.04, generic, linux-generic]
      - [noble, arm64, ga-24.04, generic, linux-generic]
  - release: jammy
    version: "22.04"
    release_title: "22.04 LTS"
    release_codename: Jammy Jellyfish
    support_eol: "2027-06-01"
    support_esm_eol: "2032-04-09"
    kernels:
      - [jammy, amd64, ga-22.04, generic, linux-generic]
`

// ConfigFor is a build config with releases r00, r01, ... (n of them),
// each with one kernel row per arch: for trees of any size.
func ConfigFor(n int, arches []string) string {
	var b strings.Builder
	b.WriteString("kname: \"%(subarch)s\"\nreleases:\n")
	for i := range n {
		rel := fmt.Sprintf("r%02d", i)
		fmt.Fprintf(&b, "  - release: %s\n    version: \"%d.04\"\n    release_title: \"%d.04\"\n    release_codename: R%02d\n", rel, 30+i, 30+i, i)
		b.WriteString("    support_eol: \"2040-01-01\"\n    support_esm_eol: \"2045-01-01\"\n    kernels:\n")
		for _, a := range arches {
			fmt.Fprintf(&b, "      - [%s, %s, ga-%d.04, generic, linux-generic]\n", rel, a, 30+i)
		}
	}
	return b.String()
}

// Key is the Break key of an image.
func Key(release, arch, version string) string { return release + "/" + arch + "/" + version }

type obj = map[string]any

// Write writes the tree under dir and returns its products file's path
// relative to dir.
func Write(dir string, s Spec) (string, error) {
	products := obj{}
	for _, rel := range s.Releases {
		r, err := s.Config.Release(rel)
		if err != nil {
			return "", err
		}
		for _, arch := range s.Arches {
			versions := obj{}
			for _, v := range s.Versions {
				items, err := s.image(dir, rel, arch, v)
				if err != nil {
					return "", err
				}
				name := v
				if s.Hostile == "version-name" && len(v) >= 8 {
					name = v[:4] + "-" + v[4:6] + "-" + v[6:]
				}
				versions[name] = obj{"items": items, "label": "daily", "pubname": fmt.Sprintf("ubuntu-%s-daily-%s-server-%s", rel, arch, v)}
			}
			products[fmt.Sprintf("com.ubuntu.cloud.daily:server:%s:%s", r.Version, arch)] = obj{
				"arch": arch, "os": "ubuntu", "release": rel, "release_codename": r.ReleaseCodename,
				"release_title": r.ReleaseTitle, "version": string(r.Version), "supported": true, "versions": versions,
			}
		}
	}
	return s.metadata(dir, products)
}

// image writes one version's image files and returns its items.
func (s *Spec) image(dir, rel, arch, v string) (obj, error) {
	base := fmt.Sprintf("server/%s/%s/%s-server-cloudimg-%s", rel, v, rel, arch)
	brk := s.Break[Key(rel, arch, v)]
	items := obj{}
	kinds := []string{"tar.gz"}
	if !slices.Contains(s.TarOnly, v) {
		kinds = append(kinds, "squashfs")
	}
	var root []byte
	if !s.MetadataOnly {
		var err error
		if root, err = build.FakeRoot(s.Config, rel, arch, v); errors.Is(err, build.ErrConfig) {
			// No kernel row of the config for it: an image nobody
			// builds, but a well-formed tar all the same.
			root, err = emptyTar()
		}
		if err != nil {
			return nil, err
		}
	}
	for _, ftype := range kinds {
		rp := base + "." + ftype
		var data []byte
		var err error
		switch {
		case s.MetadataOnly:
			data = []byte(rp)
		case ftype == "squashfs":
			data, err = squash(root)
		default:
			data, err = gz(root)
		}
		if err != nil {
			return nil, err
		}
		if !s.MetadataOnly && brk != "missing" {
			if err := writeFile(dir, rp, data); err != nil {
				return nil, err
			}
		}
		sum, m := sha256.Sum256(data), md5.Sum(data)
		it := obj{"ftype": ftype, "path": rp, "sha256": hex.EncodeToString(sum[:]), "md5": hex.EncodeToString(m[:]), "size": len(data)}
		switch brk {
		case "sha256":
			other := sha256.Sum256([]byte("not the image"))
			it["sha256"] = hex.EncodeToString(other[:])
		case "size":
			it["size"] = len(data) + 1
		case "dotdot-path":
			it["path"] = "../../" + rp
		case "abs-path":
			it["path"] = "/" + rp
		}
		items[ftype] = it
	}
	return items, nil
}

// metadata writes the products file and the index, signed when s.Signer.
func (s *Spec) metadata(dir string, products obj) (string, error) {
	const updated = "Fri, 04 Dec 2026 00:00:00 +0000"
	ppath := "streams/v1/" + ContentID + ".json"
	ptext, err := dump(obj{"content_id": ContentID, "datatype": "image-downloads", "format": "products:1.0", "products": products, "updated": updated})
	if err != nil {
		return "", err
	}
	if s.Hostile == "not-json" {
		ptext = []byte(`{"content_id": "` + ContentID + `", "products": {` + "\n")
	}
	names := slices.Sorted(maps.Keys(products))
	entry := func(ext string) obj {
		return obj{"datatype": "image-downloads", "format": "products:1.0", "path": strings.TrimSuffix(ppath, ".json") + ext, "products": names, "updated": updated}
	}
	for ext, text := range map[string][]byte{".json": ptext} {
		if err := writeFile(dir, strings.TrimSuffix(ppath, ".json")+ext, text); err != nil {
			return "", err
		}
	}
	itext, err := dump(obj{"format": "index:1.0", "index": obj{ContentID: entry(".json")}, "updated": updated})
	if err != nil {
		return "", err
	}
	if err := writeFile(dir, "streams/v1/index.json", itext); err != nil {
		return "", err
	}
	if s.Signer == nil {
		return ppath, nil
	}
	stext, err := dump(obj{"format": "index:1.0", "index": obj{ContentID: entry(".sjson")}, "updated": updated})
	if err != nil {
		return "", err
	}
	for rel, text := range map[string][]byte{ppath: ptext, "streams/v1/index.json": stext} {
		var signed bytes.Buffer
		if err := s.Signer.ClearSign(&signed, bytes.NewReader(text)); err != nil {
			return "", err
		}
		out := signed.Bytes()
		if rel == ppath && s.Hostile == "tamper" {
			out = bytes.Replace(out, []byte(`"label": "daily"`), []byte(`"label": "tampered"`), 1)
		}
		if err := writeFile(dir, strings.TrimSuffix(rel, ".json")+".sjson", out); err != nil {
			return "", err
		}
	}
	return ppath, nil
}

func emptyTar() ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}); err != nil {
		return nil, err
	}
	err := tw.Close()
	return b.Bytes(), err
}

func dump(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	err := enc.Encode(v)
	return b.Bytes(), err
}

func writeFile(dir, rel string, b []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

func gz(b []byte) ([]byte, error) {
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	w.ModTime = w.ModTime.UTC() // zero: reproducible
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	err := w.Close()
	return out.Bytes(), err
}

// squash packs a tar stream into a squashfs with tar2sqfs.
func squash(tarball []byte) ([]byte, error) {
	f, err := os.CreateTemp("", "cloudgen-*.squashfs")
	if err != nil {
		return nil, err
	}
	f.Close()
	defer os.Remove(f.Name())
	cmd := exec.Command("tar2sqfs", "--quiet", "--force", "--no-skip", "--compressor", "gzip", "--num-jobs", "1",
		"--defaults", "uid=0,gid=0,mode=0755,mtime=0", f.Name())
	cmd.Stdin = bytes.NewReader(tarball)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tar2sqfs: %v: %s", err, out)
	}
	return os.ReadFile(f.Name())
}

// Tree is what WriteTree makes: releases r00, r01, … for each arch, with
// versions daily serials from 20260101.
type Tree struct {
	Releases, Versions int
	Arches             []string
	MetadataOnly       bool
	Signer             *pgp.Signer
}

// WriteTree writes a generated upstream and its build config
// (dir/config.yaml), and returns the products file's path.
func WriteTree(dir string, t Tree) (string, error) {
	text := ConfigFor(t.Releases, t.Arches)
	cfg, err := build.ParseConfig("generated", []byte(text), nil)
	if err != nil {
		return "", err
	}
	spec := Spec{Config: cfg, Arches: t.Arches, MetadataOnly: t.MetadataOnly, Signer: t.Signer}
	for i := range t.Releases {
		spec.Releases = append(spec.Releases, fmt.Sprintf("r%02d", i))
	}
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range t.Versions {
		spec.Versions = append(spec.Versions, day.AddDate(0, 0, i).Format("20060102"))
	}
	p, err := Write(dir, spec)
	if err != nil {
		return "", err
	}
	return p, fsx.WriteFileAtomic(filepath.Join(dir, "config.yaml"), []byte(text), 0o644)
}
