package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (s *suite) testSessions(t *testing.T) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		sess := newSession("sid-1", "acct-1")
		must(t, "CreateSession", b.CreateSession(ctx, sess))
		got, err := b.GetSession(ctx, sess.Hash)
		must(t, "GetSession", err)
		same(t, "GetSession", got, sess)
	})
	t.Run("DuplicateRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		sess := newSession("sid-1", "acct-1")
		must(t, "CreateSession", b.CreateSession(ctx, sess))
		wantErr(t, "CreateSession duplicate", b.CreateSession(ctx, newSession("sid-1", "acct-evil")), storage.ErrAlreadyExists)
		got, err := b.GetSession(ctx, sess.Hash)
		must(t, "GetSession", err)
		same(t, "session", got, sess)
		n, err := b.DeleteAccountSessions(ctx, "acct-evil")
		must(t, "DeleteAccountSessions", err)
		if n != 0 {
			t.Fatalf("refused session indexed under its account: %d", n)
		}
	})
	t.Run("GetUnknown", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		_, err := b.GetSession(ctx, Hash("nope"))
		wantErr(t, "GetSession", err, storage.ErrNotFound)
	})
	t.Run("TouchMovesForwardOnly", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		sess := newSession("sid-1", "acct-1")
		must(t, "CreateSession", b.CreateSession(ctx, sess))
		must(t, "TouchSession", b.TouchSession(ctx, sess.Hash, at(time.Hour)))
		must(t, "TouchSession back in time", b.TouchSession(ctx, sess.Hash, at(time.Minute)))
		got, err := b.GetSession(ctx, sess.Hash)
		must(t, "GetSession", err)
		sess.LastSeenAt = at(time.Hour)
		same(t, "touched session", got, sess)
		wantErr(t, "TouchSession unknown", b.TouchSession(ctx, Hash("nope"), at(0)), storage.ErrNotFound)
		_, err = b.GetSession(ctx, Hash("nope"))
		wantErr(t, "GetSession after refused touch", err, storage.ErrNotFound)
	})
	t.Run("Delete", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		s1, s2 := newSession("sid-1", "acct-1"), newSession("sid-2", "acct-1")
		must(t, "CreateSession", b.CreateSession(ctx, s1))
		must(t, "CreateSession", b.CreateSession(ctx, s2))
		must(t, "DeleteSession", b.DeleteSession(ctx, s1.Hash))
		_, err := b.GetSession(ctx, s1.Hash)
		wantErr(t, "GetSession deleted", err, storage.ErrNotFound)
		wantErr(t, "DeleteSession again", b.DeleteSession(ctx, s1.Hash), storage.ErrNotFound)
		n, err := b.DeleteAccountSessions(ctx, "acct-1")
		must(t, "DeleteAccountSessions", err)
		if n != 1 {
			t.Fatalf("DeleteAccountSessions = %d, want 1 (the deleted session must leave the index)", n)
		}
	})
	t.Run("DeleteAccountSessions", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		for _, sess := range []storage.Session{
			newSession("a1", "acct-1"), newSession("a2", "acct-1"), newSession("a3", "acct-1"),
			newSession("b1", "acct-10"), newSession("c1", "acct-"),
		} {
			must(t, "CreateSession", b.CreateSession(ctx, sess))
		}
		n, err := b.DeleteAccountSessions(ctx, "acct-1")
		must(t, "DeleteAccountSessions", err)
		if n != 3 {
			t.Fatalf("DeleteAccountSessions = %d, want 3", n)
		}
		for _, id := range []string{"a1", "a2", "a3"} {
			_, err := b.GetSession(ctx, Hash(id))
			wantErr(t, "GetSession "+id, err, storage.ErrNotFound)
		}
		for _, id := range []string{"b1", "c1"} {
			_, err := b.GetSession(ctx, Hash(id))
			must(t, "GetSession kept "+id, err)
		}
		n, err = b.DeleteAccountSessions(ctx, "acct-1")
		must(t, "DeleteAccountSessions again", err)
		if n != 0 {
			t.Fatalf("DeleteAccountSessions again = %d, want 0", n)
		}
	})
}
