// Package testcheck is a test helper: it checks published trees with
// verify, and with the shared ss-validate where that is present (the two
// must agree).
package testcheck

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/testref"
	"github.com/mephstore/mephstore/verify"
)

// Validate checks a published stream (a directory or URL) with verify;
// with a keyring it checks signatures and requires the detached ones. args
// may be --expect-products N and --expect-items N. Where the shared
// ss-validate is present it checks the tree too, and must agree.
func Validate(t testing.TB, target, keyring string, args ...string) {
	t.Helper()
	if err := Check(target, keyring, args...); err != nil {
		t.Fatal(err)
	}
}

// Check is Validate returning an error, for tests that check trees from
// several goroutines or after kills.
func Check(target, keyring string, args ...string) error {
	o := verify.Options{RequireDetached: keyring != ""}
	if keyring != "" {
		kr, err := pgp.ReadKeyring(keyring)
		if err != nil {
			return err
		}
		o.Keyring = kr
	}
	want := map[string]int{}
	for i := 0; i+1 < len(args); i += 2 {
		n, err := strconv.Atoi(args[i+1])
		if err != nil {
			return fmt.Errorf("validate: %s %s", args[i], args[i+1])
		}
		want[args[i]] = n
	}
	rep, err := verify.Verify(context.Background(), target, o)
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("verify %s: %d problems: %v", target, len(rep.Problems), rep.Problems)
	}
	if n, ok := want["--expect-products"]; ok && rep.Products != n {
		return fmt.Errorf("verify %s: %d products, want %d", target, rep.Products, n)
	}
	if n, ok := want["--expect-items"]; ok && rep.Selected != n {
		return fmt.Errorf("verify %s: %d items, want %d", target, rep.Selected, n)
	}
	return ssValidate(target, keyring, args...)
}

// ssValidate runs the shared ss-validate when it is there.
func ssValidate(target, keyring string, args ...string) error {
	s := testref.Shared()
	if s == "" {
		return nil
	}
	tool := filepath.Join(s, "tools", "ss-validate")
	if _, err := os.Stat(tool); err != nil {
		return nil
	}
	a := []string{tool, "-q"}
	if keyring != "" {
		a = append(a, "--keyring", keyring, "--require-detached")
	}
	out, err := exec.Command("python3", append(append(a, args...), target)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ss-validate %s (mephstore verify passed it): %v\n%s", target, err, out)
	}
	return nil
}
