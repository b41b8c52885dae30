package gc

import (
	"strings"
	"testing"
)

// FuzzParseAge: an age parses to a non-negative duration that FormatAge
// writes back in a form that parses to the same duration, or fails in one
// line; never zero by accident.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"3d", "1d12h", "90m", "0s", "", "3", "1.5d", "3x", "-1d", "d", "99999999999999999999d", "1w1w1w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseAge(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(s, "\n") {
				t.Fatalf("two-line error %q", err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q -> %v", s, d)
		}
		back, err := ParseAge(FormatAge(d))
		if err != nil || back != d {
			t.Fatalf("%q -> %v -> %q -> %v %v", s, d, FormatAge(d), back, err)
		}
	})
}
