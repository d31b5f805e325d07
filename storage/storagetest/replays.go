package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// testReplays: single-use assertion identifiers (RFC 7523 "jti").
func (s *suite) testReplays(t *testing.T) {
	t.Run("UseOnce", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		h := Hash("client-1\x00jti-1")
		must(t, "UseOnce", b.UseOnce(ctx, h, at(5*time.Minute), at(0)))
		wantErr(t, "UseOnce again", b.UseOnce(ctx, h, at(5*time.Minute), at(time.Minute)), storage.ErrReplayed)
		// Just before expiry, still refused; another identifier is unaffected.
		wantErr(t, "UseOnce before expiry", b.UseOnce(ctx, h, at(10*time.Minute), at(5*time.Minute-time.Second)), storage.ErrReplayed)
		must(t, "UseOnce other", b.UseOnce(ctx, Hash("client-1\x00jti-2"), at(5*time.Minute), at(time.Minute)))
	})
	t.Run("RefusalLeavesRecord", func(t *testing.T) {
		// A refused replay must not move the expiry: the first record still
		// decides when the identifier may be seen again.
		b, ctx := s.backend(t), t.Context()
		h := Hash("client-1\x00jti-1")
		must(t, "UseOnce", b.UseOnce(ctx, h, at(time.Minute), at(0)))
		wantErr(t, "UseOnce replay with a later expiry", b.UseOnce(ctx, h, at(time.Hour), at(30*time.Second)), storage.ErrReplayed)
		must(t, "UseOnce after the first expiry", b.UseOnce(ctx, h, at(2*time.Minute), at(time.Minute)))
		wantErr(t, "UseOnce after reuse", b.UseOnce(ctx, h, at(3*time.Minute), at(90*time.Second)), storage.ErrReplayed)
	})
	t.Run("RefusesBadInput", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		if err := b.UseOnce(ctx, []byte("jti-in-the-clear"), at(time.Minute), at(0)); err == nil || errors.Is(err, storage.ErrReplayed) {
			t.Errorf("UseOnce accepted an unhashed key: %v", err)
		}
		if err := b.UseOnce(ctx, Hash("x"), time.Time{}, at(0)); err == nil {
			t.Error("UseOnce accepted a record that never expires")
		}
	})
	t.Run("DeleteExpired", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		dead, live := Hash("dead"), Hash("live")
		must(t, "UseOnce", b.UseOnce(ctx, dead, at(time.Minute), at(0)))
		must(t, "UseOnce", b.UseOnce(ctx, live, at(time.Hour), at(0)))
		n, err := b.DeleteExpired(ctx, at(time.Minute), time.Time{})
		must(t, "DeleteExpired", err)
		if n != 1 {
			t.Errorf("DeleteExpired removed %d records, want 1", n)
		}
		wantErr(t, "UseOnce live after cleanup", b.UseOnce(ctx, live, at(2*time.Hour), at(2*time.Minute)), storage.ErrReplayed)
		must(t, "UseOnce dead after cleanup", b.UseOnce(ctx, dead, at(time.Hour), at(2*time.Minute)))
	})
	t.Run("ExactlyOnceConcurrent", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		h := Hash("client-1\x00jti-race")
		const n = 50
		errs := make([]error, n)
		race(n, func(i int) {
			errs[i] = b.UseOnce(ctx, h, at(5*time.Minute), at(time.Second))
		})
		exactlyOneWon(t, "UseOnce", errs, storage.ErrReplayed)
	})
}
