package gc

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrBadAge is wrapped by ParseAge's errors.
var ErrBadAge = errors.New("bad age")

var ageUnits = map[byte]time.Duration{
	'w': 7 * 24 * time.Hour,
	'd': 24 * time.Hour,
	'h': time.Hour,
	'm': time.Minute,
	's': time.Second,
}

// ParseAge reads an age: one or more groups of digits followed by w, d, h,
// m or s, summed ("3d", "1d12h", "90m", "0s"). Anything else is an error,
// never zero: "", "3", "1.5d", "3x", "-1d", "d".
func ParseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("age %q: %w: empty (want e.g. 3d, 12h, 1d12h)", s, ErrBadAge)
	}
	var total time.Duration
	for i := 0; i < len(s); {
		j := i
		var n int64
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			if n > math.MaxInt64/10 {
				return 0, fmt.Errorf("age %q: %w: too large", s, ErrBadAge)
			}
			n = n*10 + int64(s[j]-'0')
			j++
		}
		if j == i {
			return 0, fmt.Errorf("age %q: %w: want a whole number before each unit (w, d, h, m, s)", s, ErrBadAge)
		}
		if j == len(s) {
			return 0, fmt.Errorf("age %q: %w: %q has no unit (w, d, h, m or s)", s, ErrBadAge, s[i:])
		}
		u, ok := ageUnits[s[j]]
		if !ok {
			return 0, fmt.Errorf("age %q: %w: unknown unit %q (want w, d, h, m or s)", s, ErrBadAge, s[j])
		}
		if n > int64(math.MaxInt64/u) || total > math.MaxInt64-time.Duration(n)*u {
			return 0, fmt.Errorf("age %q: %w: too large", s, ErrBadAge)
		}
		total += time.Duration(n) * u
		i = j + 1
	}
	return total, nil
}

// FormatAge writes a duration the way ParseAge reads it ("3d", "1d12h").
func FormatAge(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	out := ""
	for _, u := range []byte{'w', 'd', 'h', 'm', 's'} {
		if n := d / ageUnits[u]; n > 0 {
			out += fmt.Sprintf("%d%c", n, u)
			d -= n * ageUnits[u]
		}
	}
	if out == "" {
		return "0s"
	}
	return out
}
