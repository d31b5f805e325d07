package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (s *suite) testTickets(t *testing.T) {
	t.Run("TakeOnce", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		tk := newTicket("oidc_state", "state-1")
		must(t, "PutTicket", b.PutTicket(ctx, tk))
		got, err := b.TakeTicket(ctx, "oidc_state", tk.Hash, at(time.Minute))
		must(t, "TakeTicket", err)
		same(t, "TakeTicket", got, tk)
		_, err = b.TakeTicket(ctx, "oidc_state", tk.Hash, at(time.Minute))
		wantErr(t, "TakeTicket again", err, storage.ErrNotFound)
	})
	t.Run("Unknown", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		_, err := b.TakeTicket(ctx, "oidc_state", Hash("nope"), at(0))
		wantErr(t, "TakeTicket", err, storage.ErrNotFound)
	})
	t.Run("OtherKindRefusedKept", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		tk := newTicket("oidc_state", "state-1")
		must(t, "PutTicket", b.PutTicket(ctx, tk))
		_, err := b.TakeTicket(ctx, "saml_request", tk.Hash, at(time.Minute))
		wantErr(t, "TakeTicket other kind", err, storage.ErrNotFound)
		got, err := b.TakeTicket(ctx, "oidc_state", tk.Hash, at(time.Minute))
		must(t, "TakeTicket right kind", err)
		same(t, "TakeTicket", got, tk)
	})
	t.Run("ExpiredRefusedKept", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		tk := newTicket("oidc_state", "state-1")
		must(t, "PutTicket", b.PutTicket(ctx, tk))
		_, err := b.TakeTicket(ctx, "oidc_state", tk.Hash, tk.ExpiresAt)
		wantErr(t, "TakeTicket at expiry", err, storage.ErrNotFound)
		_, err = b.TakeTicket(ctx, "oidc_state", tk.Hash, tk.ExpiresAt.Add(-time.Microsecond))
		must(t, "TakeTicket before expiry (the refusal changed nothing)", err)
	})
	t.Run("DuplicateRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		tk := newTicket("oidc_state", "state-1")
		must(t, "PutTicket", b.PutTicket(ctx, tk))
		other := tk
		other.Value = []byte("attacker")
		wantErr(t, "PutTicket duplicate", b.PutTicket(ctx, other), storage.ErrAlreadyExists)
		got, err := b.TakeTicket(ctx, "oidc_state", tk.Hash, at(0))
		must(t, "TakeTicket", err)
		same(t, "TakeTicket", got, tk)
	})
}
