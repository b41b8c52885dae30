package progress

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Meter counts progress towards a total (bytes or items).
type Meter interface {
	// Add records n more units done. Safe for concurrent use.
	Add(n int64)
	// Done stops the meter and clears its line.
	Done()
}

// Factory makes meters. The zero value makes meters that draw nothing.
type Factory struct {
	W        io.Writer     // where to draw (a terminal); nil disables drawing
	Interval time.Duration // redraw interval; 0 means 100ms
}

// Unit tells how to print amounts.
type Unit int

const (
	Bytes Unit = iota
	Items
)

// New starts a meter labelled label towards total (0 if unknown).
func (f Factory) New(label string, total int64, unit Unit) Meter {
	if f.W == nil {
		return nop{}
	}
	iv := f.Interval
	if iv == 0 {
		iv = 100 * time.Millisecond
	}
	m := &bar{w: f.W, label: label, total: total, unit: unit, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go m.loop(iv)
	return m
}

type nop struct{}

func (nop) Add(int64) {}
func (nop) Done()     {}

type bar struct {
	w     io.Writer
	label string
	total int64
	unit  Unit
	start time.Time
	n     atomic.Int64
	once  sync.Once
	stop  chan struct{}
	done  chan struct{}
}

func (b *bar) Add(n int64) { b.n.Add(n) }

func (b *bar) Done() {
	b.once.Do(func() {
		close(b.stop)
		<-b.done
	})
}

func (b *bar) loop(iv time.Duration) {
	defer close(b.done)
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			fmt.Fprint(b.w, "\r\033[K")
			return
		case <-t.C:
			fmt.Fprint(b.w, "\r\033[K"+b.line(time.Since(b.start)))
		}
	}
}

func (b *bar) line(el time.Duration) string {
	n := b.n.Load()
	s := b.label + "  " + b.amount(n)
	if b.total > 0 {
		s += " / " + b.amount(b.total) + fmt.Sprintf("  %3d%%", n*100/b.total)
	}
	if secs := el.Seconds(); secs > 0 && n > 0 {
		rate := float64(n) / secs
		s += "  " + b.amount(int64(rate)) + "/s"
		if b.total > n {
			eta := time.Duration(float64(b.total-n) / rate * float64(time.Second))
			s += "  eta " + eta.Round(time.Second).String()
		}
	}
	return s
}

func (b *bar) amount(n int64) string {
	if b.unit == Items {
		return fmt.Sprint(n)
	}
	return HumanBytes(n)
}

// HumanBytes prints n bytes with a binary unit: 512 B, 1.5 KiB, 3.0 GiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
