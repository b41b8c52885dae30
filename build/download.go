package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/progress"
)

// ErrChecksum is wrapped when a source's sha256 is not the one expected.
var ErrChecksum = errors.New("source checksum mismatch")

// IsURL says whether a SOURCE argument is an http(s) URL.
func IsURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// Download fetches url into a temp file of the store (resuming a transfer
// cut off half-way, with a progress meter), checking its sha256 against
// want when want is not empty. The caller discards the temp file.
func Download(ctx context.Context, store *cas.Store, c *fetch.Client, url, want string, meters progress.Factory) (*ToolFile, error) {
	tmp, err := NewToolFile(store, store.Blobs())
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Discard()
		}
	}()
	body, size, err := c.Get(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	defer body.Close()
	f, err := os.OpenFile(tmp.Path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := meters.New("download "+url, max(size, 0), progress.Bytes)
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h, meterWriter{m}), body)
	m.Done()
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if err := checkSum(url, hex.EncodeToString(h.Sum(nil)), want); err != nil {
		return nil, err
	}
	ok = true
	return tmp, nil
}

type meterWriter struct{ m progress.Meter }

func (w meterWriter) Write(p []byte) (int, error) { w.m.Add(int64(len(p))); return len(p), nil }

// checkSum compares a sha256 (hex) with the one wanted ("" wants none).
func checkSum(name, got, want string) error {
	want = strings.ToLower(strings.TrimPrefix(want, "sha256:"))
	if want != "" && got != want {
		return fmt.Errorf("source %s: %w: sha256 is %s, expected %s", name, ErrChecksum, got, want)
	}
	return nil
}
