package catalog

import (
	"slices"
	"strings"
)

// CompareVersions orders version names (serials like 20240101, 20240101.1,
// 20240101_01) from oldest to newest. Runs of digits compare as numbers,
// everything else byte by byte, so 20240101.10 is newer than 20240101.9
// (a plain string comparison, which MAAS uses, gets that wrong) and
// 20240101 is older than 20240101.1. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		ad, bd := isDigit(a[0]), isDigit(b[0])
		switch {
		case ad && bd:
			ra, rb := digitRun(a), digitRun(b)
			na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			if len(na) != len(nb) {
				return cmp(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			if c := cmp(len(ra), len(rb)); c != 0 {
				return c
			}
			a, b = a[len(ra):], b[len(rb):]
		default:
			if a[0] != b[0] {
				return cmp(int(a[0]), int(b[0]))
			}
			a, b = a[1:], b[1:]
		}
	}
	return cmp(len(a), len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) string {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i]
}

func cmp(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NewestFirst returns the version indexes of p ordered newest first.
func NewestFirst(p *Product) []int {
	names := make([]string, len(p.Versions))
	for i, v := range p.Versions {
		names[i] = v.Name
	}
	return NewestFirstNames(names)
}

// newestFirst returns the indexes of version names ordered newest first.
func NewestFirstNames(names []string) []int {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int { return CompareVersions(names[j], names[i]) })
	return idx
}
