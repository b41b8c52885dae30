package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestDisabledFactoryDrawsNothing(t *testing.T) {
	m := Factory{}.New("x", 10, Bytes)
	m.Add(5)
	m.Done()
	if _, ok := m.(nop); !ok {
		t.Fatalf("zero Factory made %T, want a no-op meter", m)
	}
}

func TestLine(t *testing.T) {
	b := &bar{label: "ingest big.bin", total: 4 << 20, unit: Bytes}
	b.n.Store(1 << 20)
	got := b.line(time.Second)
	for _, want := range []string{"ingest big.bin", "1.0 MiB / 4.0 MiB", " 25%", "1.0 MiB/s", "eta 3s"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
}

func TestDoneClearsLine(t *testing.T) {
	var w syncBuf
	m := Factory{W: &w, Interval: time.Millisecond}.New("x", 0, Items)
	m.Add(3)
	m.Done()
	m.Done() // idempotent
	w.mu.Lock()
	defer w.mu.Unlock()
	if !strings.HasSuffix(w.b.String(), "\r\033[K") {
		t.Fatalf("output %q does not end by clearing the line", w.b.String())
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 30: "3.0 GiB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
