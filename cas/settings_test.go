package cas

import (
	"context"
	"errors"
	"testing"
)

func TestSetSettingsSetsEveryOneReadersNone(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	set := map[string]string{"published:/srv\x00daily": "sha256:ab signed", "publish_root": "/srv", "sign_key": "/k.asc"}
	if err := s.WithWriter(ctx, "test", func(ss *Session) error { return ss.SetSettings(set) }); err != nil {
		t.Fatal(err)
	}
	names := []string{"published:/srv\x00daily", "publish_root", "sign_key", "unset"}
	got, err := s.ReadSettings(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if got[i] != set[n] {
			t.Errorf("setting %q = %q, want %q", n, got[i], set[n])
		}
	}
	// A reader cannot write: nothing changes.
	ss, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = ss.SetSettings(map[string]string{"publish_root": "/elsewhere"})
	ss.Close()
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("SetSettings in a reader: %v, want ErrReadOnly", err)
	}
	if got, _ := s.ReadSettings(ctx, "publish_root"); got[0] != "/srv" {
		t.Fatalf("publish_root = %q after a refused write", got[0])
	}
}
