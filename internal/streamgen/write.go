package streamgen

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type obj = map[string]any

// products writes the data files and returns the products.
func (w *writer) products() (obj, *Stats, error) {
	s := w.spec
	products := obj{}
	st := &Stats{}
	for _, rel := range s.Releases {
		for _, arch := range s.Arches {
			for _, k := range kernelsOf(rel.Version, s.Kernels) {
				versions := obj{}
				for _, vname := range s.Versions {
					items, err := w.items(rel, arch, vname, k)
					if err != nil {
						return nil, nil, err
					}
					versions[vname] = obj{"items": items}
					st.Versions++
					st.Items += len(items)
				}
				p := obj{
					"arch": arch, "kflavor": k.flavor, "krel": rel.Codename, "label": s.Stream, "os": "ubuntu",
					"release": rel.Codename, "release_codename": rel.Title, "release_title": title(rel.Version),
					"subarch": k.subarch, "version": rel.Version, "versions": versions,
					"subarches": "generic,hwe-p,hwe-q,hwe-r,hwe-s,hwe-t,hwe-u,hwe-v,hwe-w,ga-16.04,ga-18.04,ga-20.04,ga-22.04," + k.subarch,
				}
				if rel.EOL != "" {
					p["support_eol"], p["support_esm_eol"] = rel.EOL, rel.ESMEOL
				}
				products[fmt.Sprintf("com.ubuntu.maas.%s:v3:boot:%s:%s:%s", s.Stream, rel.Version, arch, k.subarch)] = p
				st.Products++
			}
		}
	}
	st.Files = len(w.written)
	return products, st, w.breakProducts(products)
}

// title is a release's title: "24.04 LTS" for even years' April releases.
func title(ver string) string {
	var y, m int
	fmt.Sscanf(ver, "%d.%d", &y, &m)
	if m == 4 && y%2 == 0 {
		return ver + " LTS"
	}
	return ver
}

// items writes one version's files (shared ones once) and returns its items.
func (w *writer) items(rel Release, arch, vname string, k kernel) (obj, error) {
	base := rel.Codename + "/" + arch + "/" + vname
	files := map[string]string{
		"boot-kernel": base + "/" + k.dir + "/" + k.flavor + "/boot-kernel",
		"boot-initrd": base + "/" + k.dir + "/" + k.flavor + "/boot-initrd",
		"squashfs":    base + "/squashfs",
		"manifest":    base + "/squashfs.manifest",
	}
	items := obj{}
	for _, ftype := range slices.Sorted(maps.Keys(files)) {
		p := files[ftype]
		fi, err := w.put(p, ftype == "manifest")
		if err != nil {
			return nil, err
		}
		it := obj{"ftype": ftype, "path": p, "sha256": fi.sha256, "size": fi.size}
		if !w.spec.NoMD5 {
			it["md5"] = fi.md5
		}
		if ftype == "boot-kernel" || ftype == "boot-initrd" {
			it["kpackage"] = "linux-" + k.flavor
		}
		items[ftype] = it
	}
	return items, nil
}

// put writes the file at rel once (seeded random bytes, or a manifest).
func (w *writer) put(rel string, manifest bool) (fileInfo, error) {
	if fi, ok := w.written[rel]; ok {
		return fi, nil
	}
	var data []byte
	if manifest {
		var b bytes.Buffer
		for i := 0; b.Len() < max(w.spec.DataSize, 1); i++ {
			fmt.Fprintf(&b, "pkg-%d\t1.%d-%d\n", i, i, w.rnd.IntN(10))
		}
		data = b.Bytes()
	} else {
		data = make([]byte, w.spec.DataSize)
		for i := range data {
			data[i] = byte(w.rnd.Uint32())
		}
	}
	full := filepath.Join(w.out, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fileInfo{}, err
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		return fileInfo{}, err
	}
	s, m := sha256.Sum256(data), md5.Sum(data)
	fi := fileInfo{hex.EncodeToString(s[:]), hex.EncodeToString(m[:]), len(data)}
	w.written[rel] = fi
	return fi, nil
}

// victim returns the first product's newest version and its boot-kernel.
func victim(products obj) (p obj, vname string, items obj) {
	names := slices.Sorted(maps.Keys(products))
	p = products[names[0]].(obj)
	vs := p["versions"].(obj)
	vnames := slices.Sorted(maps.Keys(vs))
	vname = vnames[len(vnames)-1]
	return p, vname, vs[vname].(obj)["items"].(obj)
}

// breakProducts breaks the metadata before anything is signed.
func (w *writer) breakProducts(products obj) error {
	if len(products) == 0 {
		return nil
	}
	p, vname, items := victim(products)
	v := items["boot-kernel"].(obj)
	path := v["path"].(string)
	w.victimRel = path
	for _, b := range w.spec.Breaks {
		switch b {
		case "sha256":
			s := sha256.Sum256([]byte("not the content"))
			v["sha256"] = hex.EncodeToString(s[:])
		case "md5":
			m := md5.Sum([]byte("not the content"))
			v["md5"] = hex.EncodeToString(m[:])
		case "no-sha256":
			delete(v, "sha256")
			v["md5"] = w.written[path].md5
		case "size":
			v["size"] = v["size"].(int) + 1
		case "size-string":
			v["size"] = fmt.Sprint(v["size"])
		case "dotdot-path":
			first, _, _ := strings.Cut(path, "/")
			v["path"] = first + "/../" + path
		case "abs-path":
			v["path"] = "/" + path
		case "escape-path":
			v["path"] = "../../outside/boot-kernel"
		case "maas-field":
			delete(p, "release_title")
		case "subarches-list":
			p["subarches"] = strings.Split(p["subarches"].(string), ",")
		case "no-manifest":
			delete(items, "manifest")
		case "long-name":
			vs := p["versions"].(obj)
			vs[strings.Repeat("1", 30000)] = vs[vname]
			delete(vs, vname)
		case "product-dir":
			first := slices.Sorted(maps.Keys(products))[0]
			products["com.ubuntu.maas:../../x"] = products[first]
			delete(products, first)
		case "version-name":
			vs := p["versions"].(obj)
			vs[vname[:4]+"-"+vname[4:6]+"-"+vname[6:]] = vs[vname]
			delete(vs, vname)
		}
	}
	return nil
}

// dump renders data as simplestreams does: keys sorted, one-space indent.
func dump(data any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// metadata writes the products file, the index, and their signatures, and
// breaks the files the breaks name.
func (w *writer) metadata(products obj) error {
	s := w.spec
	cid := "com.ubuntu.maas:" + s.Stream + ":v3:download"
	updated := s.Updated.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700")
	pdata := obj{"content_id": cid, "datatype": "image-ids", "format": "products:1.0", "products": products, "updated": updated}
	if s.broken("no-datatype") {
		delete(pdata, "datatype")
	}
	if s.broken("content-id") {
		pdata["content_id"] = cid + ".other"
	}
	if s.broken("content-id-dir") {
		cid = "com.ubuntu.maas:../../x"
		pdata["content_id"] = cid
	}
	ppath := "streams/v1/" + cid + ".json"
	if s.broken("content-id-dir") {
		ppath = "streams/v1/products.json" // the file stays inside; its id does not
	}
	entry := obj{"datatype": "image-ids", "format": "products:1.0", "path": ppath,
		"products": slices.Sorted(maps.Keys(products)), "updated": updated}
	if s.broken("no-format") {
		delete(entry, "format")
	}
	index := obj{"format": "index:1.0", "index": obj{cid: entry}, "updated": updated}
	ptext, err := dump(pdata)
	if err != nil {
		return err
	}
	if s.broken("not-json") {
		ptext = []byte("{\"content_id\": \"" + cid + "\",\n")
	}
	itext, err := dump(index)
	if err != nil {
		return err
	}
	if err := w.file(ppath, ptext); err != nil {
		return err
	}
	if err := w.file("streams/v1/index.json", itext); err != nil {
		return err
	}
	if err := w.breakData(); err != nil {
		return err
	}
	if s.Signer == nil {
		return nil
	}
	return w.sign(index, ppath, ptext, itext)
}

// breakData corrupts or removes the victim's file.
func (w *writer) breakData() error {
	rel := w.victimRel
	if rel == "" {
		return nil
	}
	full := filepath.Join(w.out, filepath.FromSlash(rel))
	switch {
	case w.spec.broken("data"):
		b, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		b[0] ^= 0xff
		return os.WriteFile(full, b, 0o644)
	case w.spec.broken("missing"):
		return os.Remove(full)
	}
	return nil
}

func (w *writer) file(rel string, b []byte) error {
	full := filepath.Join(w.out, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, b, 0o644)
}

// sign writes the .sjson files and the detached signatures.
func (w *writer) sign(index obj, ppath string, ptext, itext []byte) error {
	s := w.spec
	if !s.broken("json-path") {
		for _, e := range index["index"].(obj) {
			e := e.(obj)
			e["path"] = strings.TrimSuffix(e["path"].(string), ".json") + ".sjson"
		}
	}
	stext, err := dump(index)
	if err != nil {
		return err
	}
	if !s.broken("no-detached") {
		for rel, text := range map[string][]byte{ppath: ptext, "streams/v1/index.json": itext} {
			var sig bytes.Buffer
			if err := s.Signer.DetachSign(&sig, bytes.NewReader(text)); err != nil {
				return err
			}
			if err := w.file(rel+".gpg", sig.Bytes()); err != nil {
				return err
			}
		}
	}
	for rel, text := range map[string][]byte{ppath: ptext, "streams/v1/index.json": stext} {
		var signed bytes.Buffer
		if err := s.Signer.ClearSign(&signed, bytes.NewReader(text)); err != nil {
			return err
		}
		out := signed.Bytes()
		if rel == ppath && s.broken("tamper") {
			out = bytes.Replace(out, []byte(`"label": "`+s.Stream+`"`), []byte(`"label": "tampered"`), 1)
		}
		if rel == ppath && s.broken("bom") {
			out = append([]byte("\xef\xbb\xbf"), out...)
		}
		if err := w.file(strings.TrimSuffix(rel, ".json")+".sjson", out); err != nil {
			return err
		}
	}
	return nil
}
