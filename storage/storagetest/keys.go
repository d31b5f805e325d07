package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (s *suite) testKeys(t *testing.T) {
	t.Run("RotationCAS", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		list, err := b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys empty", err)
		if len(list) != 0 {
			t.Fatalf("empty store lists %d keys", len(list))
		}
		k1 := newKey("k1", at(0))
		must(t, "AddSigningKey first", b.AddSigningKey(ctx, k1, "", at(48*time.Hour)))

		// Another instance that still believes there is no key loses.
		wantErr(t, "AddSigningKey stale empty expectation", b.AddSigningKey(ctx, newKey("kx", at(time.Minute)), "", at(48*time.Hour)), storage.ErrConflict)
		wantErr(t, "AddSigningKey wrong expectation", b.AddSigningKey(ctx, newKey("ky", at(time.Minute)), "k0", at(48*time.Hour)), storage.ErrConflict)
		list, err = b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		same(t, "keys after refused adds", list, []storage.SigningKey{k1})

		k2 := newKey("k2", at(24*time.Hour))
		must(t, "AddSigningKey rotate", b.AddSigningKey(ctx, k2, "k1", at(25*time.Hour)))
		list, err = b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		r1 := k1
		r1.RetiredAt, r1.PublishUntil = k2.CreatedAt, at(25*time.Hour)
		same(t, "keys after rotation", list, []storage.SigningKey{r1, k2})

		wantErr(t, "AddSigningKey with the retired key expected", b.AddSigningKey(ctx, newKey("k3", at(48*time.Hour)), "k1", at(49*time.Hour)), storage.ErrConflict)
		wantErr(t, "AddSigningKey duplicate kid", b.AddSigningKey(ctx, newKey("k1", at(48*time.Hour)), "k2", at(49*time.Hour)), storage.ErrAlreadyExists)
		list, err = b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		same(t, "keys after refused adds", list, []storage.SigningKey{r1, k2})
	})
	t.Run("PrePublished", func(t *testing.T) {
		// A pre-published key: stored (and so published) now, signing only
		// from its ActivatedAt. The key it replaces keeps signing until
		// then: its RetiredAt is the new key's activation, not its creation.
		b, ctx := s.backend(t), t.Context()
		k1 := newKey("k1", at(0))
		must(t, "AddSigningKey first", b.AddSigningKey(ctx, k1, "", time.Time{}))
		k2 := newKey("k2", at(time.Hour))
		k2.ActivatedAt = at(time.Hour + 10*time.Minute)
		must(t, "AddSigningKey pre-published", b.AddSigningKey(ctx, k2, "k1", at(5*time.Hour)))
		list, err := b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		r1 := k1
		r1.RetiredAt, r1.PublishUntil = k2.ActivatedAt, at(5*time.Hour)
		same(t, "keys after pre-publication", list, []storage.SigningKey{r1, k2})

		// The pending key is the newest unretired one: the next rotation
		// (even an immediate one) expects it, and retires it at its own
		// activation, leaving the first retirement as it was.
		wantErr(t, "AddSigningKey expecting the old key", b.AddSigningKey(ctx, newKey("kx", at(2*time.Hour)), "k1", at(6*time.Hour)), storage.ErrConflict)
		k3 := newKey("k3", at(time.Hour+time.Minute))
		must(t, "AddSigningKey immediate over a pending key", b.AddSigningKey(ctx, k3, "k2", at(6*time.Hour)))
		list, err = b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		r2 := k2
		r2.RetiredAt, r2.PublishUntil = k3.CreatedAt, at(6*time.Hour)
		same(t, "keys after an immediate rotation", list, []storage.SigningKey{r1, r2, k3})

		bad := newKey("k4", at(3*time.Hour))
		bad.ActivatedAt = at(2 * time.Hour)
		if err := b.AddSigningKey(ctx, bad, "k3", at(7*time.Hour)); err == nil {
			t.Fatal("AddSigningKey accepted a key activated before its creation")
		}
		list, err = b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		same(t, "keys after a refused add", list, []storage.SigningKey{r1, r2, k3})
	})
	t.Run("ListOrderedByCreatedAt", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		// kids sort the other way round from creation times.
		ka := newKey("zz", at(0))
		must(t, "AddSigningKey", b.AddSigningKey(ctx, ka, "", at(time.Hour)))
		kb := newKey("mm", at(time.Hour))
		must(t, "AddSigningKey", b.AddSigningKey(ctx, kb, "zz", at(2*time.Hour)))
		kc := newKey("aa", at(2*time.Hour))
		must(t, "AddSigningKey", b.AddSigningKey(ctx, kc, "mm", at(3*time.Hour)))
		list, err := b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		if len(list) != 3 || list[0].ID != "zz" || list[1].ID != "mm" || list[2].ID != "aa" {
			t.Fatalf("ListSigningKeys order: %+v", list)
		}
		// Retiring keeps an earlier retirement intact.
		if !list[0].RetiredAt.Equal(at(time.Hour)) || !list[0].PublishUntil.Equal(at(2*time.Hour)) {
			t.Fatalf("first key retirement changed: %+v", list[0])
		}
		if !list[1].RetiredAt.Equal(at(2*time.Hour)) || !list[2].RetiredAt.IsZero() {
			t.Fatalf("retirements: %+v", list)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		k1, k2 := newKey("k1", at(0)), newKey("k2", at(time.Hour))
		must(t, "AddSigningKey", b.AddSigningKey(ctx, k1, "", at(time.Hour)))
		wantErr(t, "DeleteSigningKey active", b.DeleteSigningKey(ctx, "k1"), storage.ErrConflict)
		must(t, "AddSigningKey", b.AddSigningKey(ctx, k2, "k1", at(2*time.Hour)))
		must(t, "DeleteSigningKey retired", b.DeleteSigningKey(ctx, "k1"))
		wantErr(t, "DeleteSigningKey again", b.DeleteSigningKey(ctx, "k1"), storage.ErrNotFound)
		list, err := b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		same(t, "keys", list, []storage.SigningKey{k2})
	})
	t.Run("Rewrap", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		k1, k2 := newKey("k1", at(0)), newKey("k2", at(time.Hour))
		must(t, "AddSigningKey", b.AddSigningKey(ctx, k1, "", at(2*time.Hour)))
		must(t, "AddSigningKey", b.AddSigningKey(ctx, k2, "k1", at(2*time.Hour)))
		list, err := b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		r1 := list[0]

		sealed := []byte("sealed:k1")
		must(t, "RewrapSigningKey", b.RewrapSigningKey(ctx, "k1", k1.PrivateJWK, sealed))
		// A stale expectation (another instance rewrapped first) changes nothing.
		wantErr(t, "RewrapSigningKey stale", b.RewrapSigningKey(ctx, "k1", k1.PrivateJWK, []byte("other")), storage.ErrConflict)
		wantErr(t, "RewrapSigningKey unknown", b.RewrapSigningKey(ctx, "nope", nil, []byte("x")), storage.ErrNotFound)
		if err := b.RewrapSigningKey(ctx, "k2", k2.PrivateJWK, nil); err == nil {
			t.Fatal("RewrapSigningKey with empty material succeeded")
		}
		list, err = b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		// Only the material changed: retirement, order and the other key stay.
		r1.PrivateJWK = sealed
		same(t, "keys after rewrap", list, []storage.SigningKey{r1, k2})
	})
}
