package build

import (
	"errors"
	"strings"
	"testing"
)

// TestLoadRealMephV3 loads maas-images' conf/meph-v3.yaml as it is (from
// the shared reference) and the built-in config, and checks what they say
// of noble/amd64.
func TestLoadRealMephV3(t *testing.T) {
	di, _ := ReadDistroInfo(DistroInfoPath)
	configs := map[string][]byte{"built-in": DefaultConfig()}
	if b := sharedConf(t, "meph-v3.yaml"); b != nil {
		configs["meph-v3.yaml"] = b
	} else {
		t.Log("no shared reference: the built-in config only")
	}
	for name, b := range configs {
		c, err := ParseConfig(name, b, di)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rel, err := c.Release("noble")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range rel.Rows("amd64") {
			got = append(got, c.ProductName("candidate", rel, k))
			dir, err := c.bootDir(rel, k, "20261122")
			if err != nil || dir != "noble/amd64/20261122/"+k.Subarch+"/"+k.Flavor {
				t.Errorf("%s: row [%s]: boot dir %q, %v", name, k, dir, err)
			}
		}
		want := map[string]bool{}
		for _, s := range nobleProducts {
			want["com.ubuntu.maas.candidate:v3:boot:24.04:amd64:"+s] = true
		}
		if len(got) != 6 {
			t.Errorf("%s: noble/amd64 products %v", name, got)
		}
		for _, g := range got {
			if !want[g] {
				t.Errorf("%s: unexpected product %s", name, g)
			}
		}
		if name == "meph-v3.yaml" {
			checkRealMephV3(t, c)
		}
	}
}

func checkRealMephV3(t *testing.T, c *Config) {
	// Aliases in every place: *glpae as subarch and flavor, *kh-mustang
	// as the options map, *sa_hwe_ll as the subarch list.
	lunar, err := c.Release("lunar")
	if err != nil {
		t.Fatal(err)
	}
	var lpae *KernelRow
	for i, k := range lunar.Kernels {
		if k.Arch == "armhf" && k.Flavor == "generic-lpae" {
			lpae = &lunar.Kernels[i]
		}
	}
	if lpae == nil || lpae.Subarch != "generic-lpae" || len(lpae.Subarches) != 1 || lpae.Subarches[0] != "generic-lpae" {
		t.Fatalf("lunar armhf lpae row: %+v", lpae)
	}
	jammy, _ := c.Release("jammy")
	var mustang *KernelRow
	for i, k := range jammy.Kernels {
		if k.Subarch == "xgene-uboot-mustang" {
			mustang = &jammy.Kernels[i]
		}
	}
	if mustang == nil || mustang.DTB != "apm-mustang.dtb" || mustang.Suffix != ".xgene-mustang" || mustang.KIHelper != "kh-xgene" || len(mustang.Extra) != 0 {
		t.Fatalf("jammy mustang row: %+v", mustang)
	}
	if c.KName != "%(subarch)s" || c.Labelled("candidate") != "com.ubuntu.maas:candidate:v3:download" {
		t.Fatalf("kname %q, content id %q", c.KName, c.ContentID)
	}
	ignored := strings.Join(c.Ignored, "\n")
	for _, k := range []string{"builtin_kernel", "kihelper", "di-format", "default_target"} {
		if !strings.Contains(ignored, k) {
			t.Errorf("ignored keys %q lack %s", ignored, k)
		}
	}
}

func TestLoadMephV2Refused(t *testing.T) {
	b := []byte("releases: []\ncontent_id: com.ubuntu.maas:daily:v2:download\nproduct_id_pre: com.ubuntu.maas.daily:v2:boot\n")
	if real := sharedConf(t, "meph-v2.yaml"); real != nil {
		b = real
	}
	_, err := ParseConfig("meph-v2.yaml", b, nil)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "v2 streams are not supported") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("meph-v2.yaml: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	row := "    kernels:\n      - [noble, amd64, ga-24.04, generic, linux-generic]\n"
	rel := func(version string) string {
		return "releases:\n  - release: noble\n    version: " + version + "\n" + row
	}
	for _, tc := range []struct {
		name, body string
		want       []string // in the one-line message
	}{
		{"unquoted version", rel("24.10"), []string{"line 3", "version 24.10", "quote it"}},
		{"version with a space", rel(`"24 04"`), []string{"version \"24 04\"", "product name component"}},
		{"version with a colon", rel(`"24:04"`), []string{"version \"24:04\""}},
		{"unknown key", "colour: blue\nreleases: []\n", []string{"line 1", "colour"}},
		{"short row", "releases:\n  - release: noble\n    version: \"24.04\"\n    kernels: [[noble, amd64]]\n", []string{"line 4", "a kernel row is"}},
		{"list as a field", "releases:\n  - release: noble\n    version: \"24.04\"\n    kernels:\n      - [noble, amd64, [ga], generic, linux-generic]\n", []string{"line 5", "field 3 (subarch)", "got a list"}},
		{"number as a field", "releases:\n  - release: noble\n    version: \"24.04\"\n    kernels:\n      - [noble, amd64, ga-24.04, generic, 42]\n", []string{"field 5 (kpackage)", "got int \"42\""}},
		{"bad options", "releases:\n  - release: noble\n    version: \"24.04\"\n    kernels:\n      - [noble, amd64, ga, generic, linux-generic, [generic], [dtb]]\n", []string{"field 7 (options)"}},
		{"no kernels", "releases:\n  - release: noble\n    version: \"24.04\"\n", []string{"has no kernels"}},
		{"bad compressor", "compressor: lz4\n" + rel(`"24.04"`), []string{"compressor \"lz4\""}},
		{"root image", "root_image: true\nreleases: []\n", []string{"root_image"}},
		{"not yaml", "releases: [\n", []string{"line"}},
		{"kname unknown field", "kname: '%(colour)s'\n" + rel(`"24.04"`), []string{"line 6", "kname", "no field \"colour\""}},
		{"kname with a slash", "kname: '%(krel)s/x'\n" + rel(`"24.04"`), []string{"one directory name"}},
		{"two rows, one product", rel(`"24.04"`) + "      - [noble, amd64, ga-24.04, generic, linux-generic-2]\n", []string{"line 6", "names product 24.04:amd64:ga-24.04 again (line 5)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tc.body), nil)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want ErrConfig", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("more than one line: %q", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
	// Versions that are valid product name components load.
	for _, v := range []string{`"12"`, `"7.0"`, `"24.04"`, `"12.0"`} {
		if _, err := ParseConfig("c.yaml", []byte(rel(v)), nil); err != nil {
			t.Errorf("version %s: %v", v, err)
		}
	}
}

func TestProductSubarch(t *testing.T) {
	for _, tc := range []struct{ subarch, flavor, want string }{
		{"ga-24.04", "generic", "ga-24.04"},
		{"ga-24.04", "lowlatency", "ga-24.04-lowlatency"},
		{"hwe-24.04-edge", "lowlatency", "hwe-24.04-lowlatency-edge"},
		{"hwe-24.04-edge", "generic", "hwe-24.04-edge"},
		{"generic-lpae", "generic-lpae", "generic-lpae-generic-lpae"},
	} {
		if got := (KernelRow{Subarch: tc.subarch, Flavor: tc.flavor}).ProductSubarch(); got != tc.want {
			t.Errorf("%s/%s: %s, want %s", tc.subarch, tc.flavor, got, tc.want)
		}
	}
}

func TestLabelledAndExpand(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{"com.ubuntu.maas:{label}:v3:download", "com.ubuntu.maas:daily:v3:download"},
		{"com.ubuntu.maas:candidate:v3:download", "com.ubuntu.maas:daily:v3:download"},
		{"com.ubuntu.maas.candidate:v3:boot", "com.ubuntu.maas.daily:v3:boot"},
		{"org.example:images", "org.example:images"},
	} {
		if got := Labelled(tc.tmpl, "daily"); got != tc.want {
			t.Errorf("Labelled(%q) = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	subs := map[string]string{"krel": "noble", "subarch": "ga-24.04"}
	for _, tc := range []struct{ tmpl, want, err string }{
		{"%(krel)s", "noble", ""},
		{"%(subarch)s-%(krel)s", "ga-24.04-noble", ""},
		{"100%%", "100%", ""},
		{"%(krel", "", "templates"},
		{"%d", "", "templates"},
		{"%(nope)s", "", "no field"},
	} {
		got, err := expand(tc.tmpl, subs)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("expand(%q) = %q, %v", tc.tmpl, got, err)
		}
	}
}

// FuzzParseConfig: any bytes give a config or a one-line ErrConfig, never
// a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add(DefaultConfig())
	f.Add([]byte("releases:\n - release: noble\n   version: \"24.04\"\n   kernels:\n    - [noble, amd64, &a ga, *a, k, [*a], {dtb: x}]\n"))
	f.Add([]byte("kname: '%(nope'\nreleases: []\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig("fuzz", b, nil)
		if err != nil {
			if !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q", err)
			}
			return
		}
		for i := range c.Releases {
			for _, k := range c.Releases[i].Kernels {
				if dir, err := c.bootDir(&c.Releases[i], k, "20260101"); err != nil || strings.Contains(dir, "..") {
					t.Fatalf("a loaded config gives boot dir %q, %v", dir, err)
				}
			}
		}
	})
}
