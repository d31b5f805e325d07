package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Defaults of Config.
const (
	DefaultBatchMax = 512
	DefaultLinger   = 100 * time.Millisecond
	DefaultBuffer   = 8192
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 5 * time.Second
)

// Config configures a Writer.
type Config struct {
	// Store receives the events.
	Store storage.Audit
	// Logger reports failed writes and drops (never an event's content
	// beyond its type and client id); nil discards them (the caller injects one).
	Logger *slog.Logger
	// BatchMax events are written in one append; a batch is written when
	// it is full or Linger after its first event.
	BatchMax int
	Linger   time.Duration
	// Buffer bounds the events held in memory, queued or waiting for a
	// retry after a failed write; past it the oldest are dropped.
	Buffer int
	// RetryMin and RetryMax bound the back-off between retries of a
	// failed write (doubling).
	RetryMin, RetryMax time.Duration
	// OnDrop, when set, is called with the number of events dropped (the
	// buffer overflowed, or the last write at Close failed): a metric.
	OnDrop func(n int)
}

// Writer appends audit events in batches from one goroutine (Start), so the
// request path never waits for an audit write and a burst costs one commit,
// not one each. A failed write is retried with back-off; events wait in a
// bounded buffer meanwhile. Events that record a security decision do not
// go through it: the backend writes them with the change (storage.WithTxAudit).
// Before Start, and after Close, Add writes synchronously.
type Writer struct {
	cfg     Config
	ch      chan storage.AuditEvent
	flushc  chan chan struct{}
	done    chan struct{}
	stopped chan struct{}
	dropped atomic.Uint64
	mu      sync.RWMutex
	running bool
	closed  bool
}

// NewWriter returns a Writer; call Start to start batching and Close to
// stop it.
func NewWriter(cfg Config) *Writer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = DefaultBatchMax
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	return &Writer{cfg: cfg, ch: make(chan storage.AuditEvent, cfg.Buffer),
		flushc: make(chan chan struct{}), done: make(chan struct{}), stopped: make(chan struct{})}
}

// Dropped is the number of events dropped so far.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Add queues ev. When the queue is full, or the writer is not running, it
// writes ev at once (and counts it dropped when that fails).
func (w *Writer) Add(ctx context.Context, ev storage.AuditEvent) {
	w.mu.RLock()
	queued := false
	if w.running && !w.closed {
		select {
		case w.ch <- ev:
			queued = true
		default:
		}
	}
	w.mu.RUnlock()
	if !queued {
		if err := w.write(context.WithoutCancel(ctx), []storage.AuditEvent{ev}); err != nil {
			w.drop(1, err)
		}
	}
}

func (w *Writer) write(ctx context.Context, evs []storage.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return w.cfg.Store.AppendAudit(ctx, evs...)
}

func (w *Writer) drop(n int, err error) {
	w.dropped.Add(uint64(n))
	w.cfg.Logger.Error("audit: events dropped", "count", n, "error", err)
	if w.cfg.OnDrop != nil {
		w.cfg.OnDrop(n)
	}
}

// Start starts batching in a goroutine, until Close (which writes what is
// queued). Calling it again does nothing.
func (w *Writer) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running || w.closed {
		return
	}
	w.running = true
	go w.run()
}

func (w *Writer) run() {
	defer close(w.stopped)
	var (
		pending []storage.AuditEvent // queued, or waiting for a retry
		timer   = time.NewTimer(time.Hour)
		armed   bool
		backoff time.Duration
		waiters []chan struct{}
	)
	timer.Stop()
	arm := func(d time.Duration) {
		if !armed {
			timer.Reset(d)
			armed = true
		}
	}
	take := func(ev storage.AuditEvent) {
		pending = append(pending, ev)
		if over := len(pending) - w.cfg.Buffer; over > 0 {
			pending = pending[over:]
			w.drop(over, errBufferFull)
		}
	}
	drain := func() {
		for {
			select {
			case ev := <-w.ch:
				take(ev)
			default:
				return
			}
		}
	}
	// flush writes pending in batches; it reports whether everything was
	// written (on a failure the rest waits for a retry).
	flush := func() bool {
		for len(pending) > 0 {
			n := min(len(pending), w.cfg.BatchMax)
			if err := w.write(context.Background(), pending[:n]); err != nil {
				w.cfg.Logger.Warn("audit: write failed; retrying", "events", len(pending), "first_type", pending[0].Type, "error", err)
				return false
			}
			pending = pending[n:]
		}
		pending = nil
		return true
	}
	for {
		select {
		case ev := <-w.ch:
			take(ev)
			if len(pending) < w.cfg.BatchMax || backoff > 0 {
				// Not full yet, or waiting to retry a failed write.
				arm(w.cfg.Linger)
				continue
			}
		case <-timer.C:
			armed = false
		case reply := <-w.flushc:
			waiters = append(waiters, reply)
		case <-w.done:
			drain()
			if !flush() {
				w.drop(len(pending), errClosed)
			}
			for _, c := range waiters {
				close(c)
			}
			return
		}
		drain()
		if flush() {
			backoff = 0
			if armed {
				timer.Stop()
				armed = false
			}
		} else {
			backoff = min(max(2*backoff, w.cfg.RetryMin), w.cfg.RetryMax)
			if armed {
				timer.Stop()
				armed = false
			}
			arm(backoff)
		}
		for _, c := range waiters {
			close(c)
		}
		waiters = waiters[:0]
	}
}

type auditError string

func (e auditError) Error() string { return string(e) }

const (
	errBufferFull = auditError("audit: buffer full")
	errClosed     = auditError("audit: write failed at close")
)

// Flush waits until every event queued so far had a write attempt (tests).
func (w *Writer) Flush() {
	w.mu.RLock()
	running := w.running && !w.closed
	w.mu.RUnlock()
	if !running {
		return
	}
	reply := make(chan struct{})
	select {
	case w.flushc <- reply:
		<-reply
	case <-w.stopped:
	}
}

// Close stops Run after a last write of what is queued, and waits for it.
// Later Adds write synchronously. Safe to call more than once.
func (w *Writer) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	running := w.running
	w.mu.Unlock()
	close(w.done)
	if running {
		<-w.stopped
	}
}
