package jsonc

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

func TestObjectKeepsRawValues(t *testing.T) {
	in := []byte(` {"b": [1, 2 ,3], "a":"x\u00e9\"", "c": {"z":1,"y":null}, "n": -1.5e3, "t": true} `)
	fs, err := Object(in)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range fs {
		got[f.Key] = string(f.Value)
	}
	want := map[string]string{"b": "[1, 2 ,3]", "a": `"x\u00e9\""`, "c": `{"z":1,"y":null}`, "n": "-1.5e3", "t": "true"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if s, ok := String(fs[1].Value); !ok || s != "xé\"" {
		t.Errorf("String = %q %v", s, ok)
	}
}

func TestCanonicalMatchesPythonStyle(t *testing.T) {
	in := []byte(`{"b":{"y":[1,{"q":2,"p":[]}],"x":{}},"a":"-1","size":12}`)
	// json.dumps(obj, indent=1, sort_keys=True)
	want := "{\n \"a\": \"-1\",\n \"b\": {\n  \"x\": {},\n  \"y\": [\n   1,\n   {\n    \"p\": [],\n    \"q\": 2\n   }\n  ]\n },\n \"size\": 12\n}"
	got, err := Canonical(in, " ")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	compact, _ := Canonical(in, "")
	if string(compact) != `{"a":"-1","b":{"x":{},"y":[1,{"p":[],"q":2}]},"size":12}` {
		t.Fatalf("compact: %s", compact)
	}
	for _, line := range strings.Split(string(got), "\n") {
		if strings.HasPrefix(line, "-") {
			t.Fatalf("line starts with '-': %q", line)
		}
	}
}

func TestDuplicateKeysLastWins(t *testing.T) {
	fs, _ := Object([]byte(`{"a":1,"b":2,"a":3}`))
	fs = Sort(fs)
	if v, _ := Get(fs, "a"); string(v) != "3" || len(fs) != 2 {
		t.Fatalf("got %v", fs)
	}
}

func TestSetKeepsOrder(t *testing.T) {
	fs := Sort([]Field{{"b", []byte("1")}, {"d", []byte("2")}})
	fs = Set(fs, "c", []byte("3"))
	fs = Set(fs, "a", []byte("4"))
	fs = Set(fs, "d", []byte("5"))
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.Key+"="+string(f.Value))
	}
	if strings.Join(keys, ",") != "a=4,b=1,c=3,d=5" {
		t.Fatal(keys)
	}
}

func TestSyntaxErrorsNameOffset(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":tru}`, `{"a":"x` + "\x01" + `"}`, `{"a":01}`, `{"a":1} x`, `[1]`, `{"a":"\q"}`, `{"a":1.}`, `{"a":"\u12"}`} {
		_, err := Object([]byte(in))
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "at byte") {
			t.Errorf("Object(%q): %v", in, err)
		}
	}
}

func TestStringsRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "tab\tnl\n", "\x01ctl", "ünï€😀"} {
		q := Quote(s)
		var back string
		if err := json.Unmarshal(q, &back); err != nil || back != s {
			t.Errorf("Quote(%q) = %s (%v)", s, q, err)
		}
		if got, ok := String(q); !ok || got != s {
			t.Errorf("String(Quote(%q)) = %q", s, got)
		}
	}
	if s, _ := String([]byte(`"\ud83d\ude00 \u00e9"`)); s != "😀 é" {
		t.Errorf("surrogates: %q", s)
	}
}

func TestText(t *testing.T) {
	for v, want := range map[string]string{`"x"`: "x", `12`: "12", `true`: "True", `false`: "False", `null`: "None", `[1,2]`: "[1,2]"} {
		if got := Text([]byte(v)); got != want {
			t.Errorf("Text(%s) = %q, want %q", v, got, want)
		}
	}
}

func FuzzObject(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"b":"c"}],"d":null}`))
	// Hostile documents: deep nesting, a BOM, lone surrogates, invalid
	// UTF-8, huge numbers, duplicate keys, trailing data.
	f.Add([]byte(strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)))
	f.Add([]byte(`{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "}"))
	f.Add([]byte("\ufeff{\"a\":1}"))
	f.Add([]byte(`{"a":"\ud800"}`))
	f.Add([]byte("{\"a\":\"\xff\xfe\"}"))
	f.Add([]byte(`{"a":1e999999999,"b":-0.0e-5}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`{"a":1} {"b":2}`))
	f.Add([]byte(`{"content_id":"com.ubuntu.maas:../../x","products":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := Object(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		w := Writer{Indent: " "}
		if err := w.Fields(Sort(fs), 0); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(w.Buf) {
			t.Fatalf("canonical output is not JSON: %q", w.Buf)
		}
	})
}

func TestMembersVisitsInOrderAndSkips(t *testing.T) {
	in := []byte(` {"a": {"x": [1, {"y": 2}]}, "p\u0061th": "v", "c": 3} `)
	var keys []string
	end, err := Members(in, 0, func(k []byte, v int) (int, error) {
		keys = append(keys, string(k))
		if string(k) == "a" {
			// Read this one ourselves.
			return Members(in, v, func(k []byte, v int) (int, error) {
				keys = append(keys, "a."+string(k))
				return -1, nil
			})
		}
		return -1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys, ","); got != "a,a.x,path,c" {
		t.Fatalf("keys %s", got)
	}
	if strings.TrimSpace(string(in[end:])) != "" || in[end-1] != '}' {
		t.Fatalf("end %d", end)
	}
	for _, bad := range []string{``, `[]`, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":1`, `{"a":"\x01"}`, `{1:2}`} {
		if _, err := Members([]byte(bad), 0, func([]byte, int) (int, error) { return -1, nil }); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	stop := errors.New("stop")
	if _, err := Members(in, 0, func([]byte, int) (int, error) { return 0, stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: %v", err)
	}
}

// productLike is a product document shaped like the ones a stream holds:
// versions of items with long hex strings and paths.
func productLike(versions int) []byte {
	var b strings.Builder
	b.WriteString(`{"arch":"amd64","os":"ubuntu","release":"noble","versions":{`)
	for v := range versions {
		if v > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"2024%04d.1":{"items":{`, v)
		for i := range 4 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"boot-initrd-%d":{"ftype":"boot-initrd","kpackage":"linux-generic","path":"noble/amd64/2024%04d/ga-24.04/generic/boot-initrd","sha256":"%064x","size":%d}`, i, v, v*4+i, 1000+v)
		}
		b.WriteString(`}}`)
	}
	b.WriteString(`}}`)
	return []byte(b.String())
}

func BenchmarkSkipProduct(b *testing.B) {
	doc := productLike(40)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Skip(doc, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// special8 agrees with the plain table for every byte at every place of a
// word, next to plain bytes and next to other special ones.
func TestSpecial8MatchesPlain(t *testing.T) {
	for _, fill := range []byte{'a', ' ', '~', '"', 0x7f, 0x80, 0x00} {
		for c := 0; c < 256; c++ {
			for p := 0; p < 8; p++ {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[p] = byte(c)
				want := false
				for _, x := range w {
					want = want || !plain[x]
				}
				if got := special8(binary.LittleEndian.Uint64(w[:])); got != want {
					t.Fatalf("fill %#x, byte %#x at %d: special8 %v, want %v", fill, c, p, got, want)
				}
			}
		}
	}
}

func TestElementsVisitsInOrderAndSkips(t *testing.T) {
	in := []byte(` [ "a" , {"x":[1]}, 2 ,"b\"" ] tail`)
	var got []string
	end, err := Elements(in, 0, func(v int) (int, error) {
		if in[v] != '"' {
			return -1, nil // skipped by Elements
		}
		s, end, err := StringAt(in, string(in), v)
		got = append(got, s)
		return end, err
	})
	if err != nil || string(in[end:]) != " tail" || fmt.Sprint(got) != `[a b"]` {
		t.Fatalf("got %q, rest %q, %v", got, in[end:], err)
	}
	for _, bad := range []string{`{}`, `[1,]`, `[1 2]`, `[1`, `[`} {
		if _, err := Elements([]byte(bad), 0, func(int) (int, error) { return -1, nil }); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: %v, want ErrSyntax", bad, err)
		}
	}
}

func TestStringAtSharesTheCopy(t *testing.T) {
	b := []byte(`"plain" "esc\u00e9\n" 7 "open`)
	s := string(b)
	plain, end, err := StringAt(b, s, 0)
	if err != nil || plain != "plain" || end != 7 {
		t.Fatalf("%q %d %v", plain, end, err)
	}
	if unsafe.StringData(plain) != unsafe.StringData(s[1:]) {
		t.Error("a string without escapes was copied instead of sliced from s")
	}
	if esc, _, err := StringAt(b, s, 8); err != nil || esc != "esc\u00e9\n" {
		t.Fatalf("%q %v", esc, err)
	}
	for _, i := range []int{22, 24, len(b)} {
		if _, _, err := StringAt(b, s, i); !errors.Is(err, ErrSyntax) {
			t.Errorf("at %d: %v, want ErrSyntax", i, err)
		}
	}
}
