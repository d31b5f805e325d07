package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (s *suite) testConsents(t *testing.T) {
	t.Run("PutGetReplace", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newConsent("alice", "client-1")
		must(t, "PutConsent", b.PutConsent(ctx, c))
		got, err := b.GetConsent(ctx, "alice", "client-1")
		must(t, "GetConsent", err)
		same(t, "GetConsent", got, c)
		c.Scopes = []string{"mcp:read", "mcp:write"}
		c.Fingerprint = "fp2"
		c.GrantedAt = at(time.Hour)
		must(t, "PutConsent replace", b.PutConsent(ctx, c))
		got, err = b.GetConsent(ctx, "alice", "client-1")
		must(t, "GetConsent", err)
		same(t, "GetConsent after replace", got, c)
	})
	t.Run("KeysDoNotCollide", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c1, c2 := newConsent("a", "bc"), newConsent("ab", "c")
		c2.Fingerprint = "other"
		must(t, "PutConsent", b.PutConsent(ctx, c1))
		must(t, "PutConsent", b.PutConsent(ctx, c2))
		got, err := b.GetConsent(ctx, "a", "bc")
		must(t, "GetConsent", err)
		same(t, "GetConsent a/bc", got, c1)
		_, err = b.GetConsent(ctx, "bc", "a")
		wantErr(t, "GetConsent swapped", err, storage.ErrNotFound)
	})
	t.Run("GetUnknown", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		_, err := b.GetConsent(ctx, "alice", "client-1")
		wantErr(t, "GetConsent", err, storage.ErrNotFound)
	})
	t.Run("Delete", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "PutConsent", b.PutConsent(ctx, newConsent("alice", "client-1")))
		must(t, "PutConsent", b.PutConsent(ctx, newConsent("bob", "client-1")))
		must(t, "DeleteConsent", b.DeleteConsent(ctx, "alice", "client-1"))
		_, err := b.GetConsent(ctx, "alice", "client-1")
		wantErr(t, "GetConsent deleted", err, storage.ErrNotFound)
		wantErr(t, "DeleteConsent again", b.DeleteConsent(ctx, "alice", "client-1"), storage.ErrNotFound)
		_, err = b.GetConsent(ctx, "bob", "client-1")
		must(t, "GetConsent other subject", err)
	})
	t.Run("DeleteClientConsents", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		for _, c := range []storage.Consent{
			newConsent("alice", "client-1"), newConsent("bob", "client-1"),
			newConsent("alice", "client-10"), newConsent("alice", "client-2"),
		} {
			must(t, "PutConsent", b.PutConsent(ctx, c))
		}
		n, err := b.DeleteClientConsents(ctx, "client-1")
		must(t, "DeleteClientConsents", err)
		if n != 2 {
			t.Fatalf("DeleteClientConsents = %d, want 2", n)
		}
		for _, sub := range []string{"alice", "bob"} {
			_, err := b.GetConsent(ctx, sub, "client-1")
			wantErr(t, "GetConsent "+sub, err, storage.ErrNotFound)
		}
		for _, client := range []string{"client-10", "client-2"} {
			_, err := b.GetConsent(ctx, "alice", client)
			must(t, "GetConsent kept "+client, err)
		}
		n, err = b.DeleteClientConsents(ctx, "client-1")
		must(t, "DeleteClientConsents again", err)
		if n != 0 {
			t.Fatalf("DeleteClientConsents again = %d, want 0", n)
		}
	})
}
