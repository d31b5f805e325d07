package audit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// flaky is a real store whose appends fail while down is set.
type flaky struct {
	*bboltstore.Store
	down atomic.Bool
}

func (f *flaky) AppendAudit(ctx context.Context, evs ...storage.AuditEvent) error {
	if f.down.Load() {
		return errors.New("disk full")
	}
	return f.Store.AppendAudit(ctx, evs...)
}

func newFlaky(t *testing.T) *flaky {
	t.Helper()
	s, err := bboltstore.Open(filepath.Join(t.TempDir(), "audit.db"), bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &flaky{Store: s}
}

func count(t *testing.T, s storage.Audit) int {
	t.Helper()
	evs, err := s.ListAudit(t.Context(), storage.AuditQuery{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A failed write is retried: the events wait in the buffer and reach the
// store once it recovers; nothing is dropped.
func TestWriterRetriesFailedWrites(t *testing.T) {
	st := newFlaky(t)
	var drops atomic.Int64
	w := NewWriter(Config{Store: st, Logger: quiet(), Linger: time.Millisecond, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond,
		OnDrop: func(n int) { drops.Add(int64(n)) }})
	w.Start()
	st.down.Store(true)
	for range 100 {
		w.Add(t.Context(), storage.AuditEvent{Type: Logout})
	}
	w.Flush()
	if n := count(t, st); n != 0 {
		t.Fatalf("%d events written while the store was down", n)
	}
	st.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for count(t, st) < 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(t, st); n != 100 || drops.Load() != 0 || w.Dropped() != 0 {
		t.Fatalf("after recovery: %d events, %d dropped", n, drops.Load())
	}
	w.Close()
}

// The buffer is bounded: past it the oldest events are dropped and
// counted; Close with the store still down counts the rest.
func TestWriterBoundedBufferCountsDrops(t *testing.T) {
	st := newFlaky(t)
	var drops atomic.Int64
	w := NewWriter(Config{Store: st, Logger: quiet(), Buffer: 10, Linger: time.Millisecond, RetryMin: time.Hour, RetryMax: time.Hour,
		OnDrop: func(n int) { drops.Add(int64(n)) }})
	w.Start()
	st.down.Store(true)
	for range 25 {
		w.Add(t.Context(), storage.AuditEvent{Type: Logout})
		w.Flush()
	}
	if got := w.Dropped(); got != 15 || drops.Load() != 15 {
		t.Fatalf("dropped %d (OnDrop %d), want 15", got, drops.Load())
	}
	w.Close()
	if got := w.Dropped(); got != 25 {
		t.Fatalf("after Close with the store down: dropped %d, want 25", got)
	}
	// After Close, Add writes synchronously.
	st.down.Store(false)
	w.Add(t.Context(), storage.AuditEvent{Type: Logout})
	if n := count(t, st); n != 1 {
		t.Fatalf("%d events after a synchronous Add", n)
	}
}

// Close writes what is queued.
func TestWriterCloseFlushes(t *testing.T) {
	st := newFlaky(t)
	w := NewWriter(Config{Store: st, Logger: quiet(), Linger: time.Hour})
	w.Start()
	for range 7 {
		w.Add(t.Context(), storage.AuditEvent{Type: Logout})
	}
	w.Close()
	if n := count(t, st); n != 7 || w.Dropped() != 0 {
		t.Fatalf("after Close: %d events, %d dropped", n, w.Dropped())
	}
}
