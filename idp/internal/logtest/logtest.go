// Package logtest captures slog records for tests that assert on log lines.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Recorder is a slog.Handler that keeps every record as one line of text:
// "LEVEL message key=value ...".
type Recorder struct {
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

// New returns a logger and the recorder behind it.
func New() (*slog.Logger, *Recorder) {
	r := &Recorder{mu: &sync.Mutex{}, lines: new([]string)}
	return slog.New(r), r
}

// Enabled implements slog.Handler: every level is kept.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	var sb strings.Builder
	sb.WriteString(rec.Level.String() + " " + rec.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range r.attrs {
		add(a)
	}
	rec.Attrs(add)
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.lines = append(*r.lines, sb.String())
	return nil
}

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr{}, r.attrs...), as...)
	return &c
}

// WithGroup implements slog.Handler (groups are flattened).
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Lines returns the records so far.
func (r *Recorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, *r.lines...)
}

// Find returns the records that contain every one of parts.
func (r *Recorder) Find(parts ...string) []string {
	var out []string
	for _, l := range r.Lines() {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
