package storagetest

import (
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (s *suite) testAccounts(t *testing.T) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		a := newAccount("acct-1", "alice@example.com")
		must(t, "CreateAccount", b.CreateAccount(ctx, a))
		got, err := b.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		same(t, "GetAccount", got, a)
		for _, email := range []string{"alice@example.com", "Alice@Example.COM"} {
			got, err = b.GetAccountByEmail(ctx, email)
			must(t, "GetAccountByEmail "+email, err)
			same(t, "GetAccountByEmail "+email, got, a)
		}
	})
	t.Run("GetUnknown", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		_, err := b.GetAccount(ctx, "nope")
		wantErr(t, "GetAccount", err, storage.ErrNotFound)
		_, err = b.GetAccountByEmail(ctx, "nobody@example.com")
		wantErr(t, "GetAccountByEmail", err, storage.ErrNotFound)
		_, err = b.GetAccountByEmail(ctx, "")
		wantErr(t, "GetAccountByEmail empty", err, storage.ErrNotFound)
	})
	t.Run("DuplicateIDRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		a := newAccount("acct-1", "alice@example.com")
		must(t, "CreateAccount", b.CreateAccount(ctx, a))
		wantErr(t, "CreateAccount duplicate id", b.CreateAccount(ctx, newAccount("acct-1", "mallory@example.com")), storage.ErrAlreadyExists)
		got, err := b.GetAccount(ctx, "acct-1")
		must(t, "GetAccount", err)
		same(t, "account", got, a)
		_, err = b.GetAccountByEmail(ctx, "mallory@example.com")
		wantErr(t, "GetAccountByEmail refused email", err, storage.ErrNotFound)
	})
	t.Run("DuplicateEmailRefusedIgnoringCase", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		a := newAccount("acct-1", "alice@example.com")
		must(t, "CreateAccount", b.CreateAccount(ctx, a))
		wantErr(t, "CreateAccount duplicate email", b.CreateAccount(ctx, newAccount("acct-2", "ALICE@example.com")), storage.ErrAlreadyExists)
		_, err := b.GetAccount(ctx, "acct-2")
		wantErr(t, "GetAccount refused", err, storage.ErrNotFound)
		got, err := b.GetAccountByEmail(ctx, "alice@example.com")
		must(t, "GetAccountByEmail", err)
		same(t, "account", got, a)
	})
	t.Run("AccountsWithoutEmail", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateAccount", b.CreateAccount(ctx, newAccount("acct-1", "")))
		must(t, "CreateAccount", b.CreateAccount(ctx, newAccount("acct-2", "")))
		list, err := b.ListAccounts(ctx)
		must(t, "ListAccounts", err)
		if len(list) != 2 {
			t.Fatalf("ListAccounts = %d, want 2", len(list))
		}
	})
	t.Run("Update", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		a := newAccount("acct-1", "alice@example.com")
		must(t, "CreateAccount", b.CreateAccount(ctx, a))
		a.Email = "alice@new.example"
		a.Name = "Alice New"
		a.Disabled = true
		a.UpdatedAt = at(time.Hour)
		must(t, "UpdateAccount", b.UpdateAccount(ctx, a))
		got, err := b.GetAccount(ctx, a.ID)
		must(t, "GetAccount", err)
		same(t, "updated account", got, a)
		_, err = b.GetAccountByEmail(ctx, "alice@example.com")
		wantErr(t, "GetAccountByEmail old email", err, storage.ErrNotFound)
		got, err = b.GetAccountByEmail(ctx, "alice@new.example")
		must(t, "GetAccountByEmail new email", err)
		same(t, "account by new email", got, a)
		// The old address is free again.
		must(t, "CreateAccount with the old address", b.CreateAccount(ctx, newAccount("acct-2", "alice@example.com")))
		// Same address, other case: allowed for the owner.
		a.Email = "Alice@New.Example"
		must(t, "UpdateAccount case change", b.UpdateAccount(ctx, a))
	})
	t.Run("UpdateUnknownCreatesNothing", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		wantErr(t, "UpdateAccount", b.UpdateAccount(ctx, newAccount("nope", "nope@example.com")), storage.ErrNotFound)
		_, err := b.GetAccount(ctx, "nope")
		wantErr(t, "GetAccount", err, storage.ErrNotFound)
		_, err = b.GetAccountByEmail(ctx, "nope@example.com")
		wantErr(t, "GetAccountByEmail", err, storage.ErrNotFound)
	})
	t.Run("UpdateEmailCollisionRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		a1, a2 := newAccount("acct-1", "alice@example.com"), newAccount("acct-2", "bob@example.com")
		must(t, "CreateAccount", b.CreateAccount(ctx, a1))
		must(t, "CreateAccount", b.CreateAccount(ctx, a2))
		changed := a2
		changed.Email = "Alice@example.com"
		changed.Name = "Bob Renamed"
		wantErr(t, "UpdateAccount onto a taken email", b.UpdateAccount(ctx, changed), storage.ErrAlreadyExists)
		got, err := b.GetAccount(ctx, "acct-2")
		must(t, "GetAccount", err)
		same(t, "account after refused update", got, a2)
		got, err = b.GetAccountByEmail(ctx, "alice@example.com")
		must(t, "GetAccountByEmail", err)
		same(t, "owner of the email", got, a1)
		got, err = b.GetAccountByEmail(ctx, "bob@example.com")
		must(t, "GetAccountByEmail", err)
		same(t, "account by its own email", got, a2)
	})
	t.Run("ListOrderedByID", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		for _, id := range []string{"c", "a", "b"} {
			must(t, "CreateAccount", b.CreateAccount(ctx, newAccount(id, id+"@example.com")))
		}
		list, err := b.ListAccounts(ctx)
		must(t, "ListAccounts", err)
		same(t, "ListAccounts", list, []storage.Account{
			newAccount("a", "a@example.com"), newAccount("b", "b@example.com"), newAccount("c", "c@example.com"),
		})
	})
	t.Run("Identities", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		a1, a2 := newAccount("acct-1", "alice@example.com"), newAccount("acct-2", "bob@example.com")
		must(t, "CreateAccount", b.CreateAccount(ctx, a1))
		must(t, "CreateAccount", b.CreateAccount(ctx, a2))
		wantErr(t, "LinkIdentity to unknown account", b.LinkIdentity(ctx, "oidc:google", "sub-1", "nope"), storage.ErrNotFound)
		_, err := b.AccountByIdentity(ctx, "oidc:google", "sub-1")
		wantErr(t, "AccountByIdentity after refused link", err, storage.ErrNotFound)

		must(t, "LinkIdentity", b.LinkIdentity(ctx, "oidc:google", "sub-1", "acct-1"))
		must(t, "LinkIdentity same account again", b.LinkIdentity(ctx, "oidc:google", "sub-1", "acct-1"))
		wantErr(t, "LinkIdentity to another account", b.LinkIdentity(ctx, "oidc:google", "sub-1", "acct-2"), storage.ErrAlreadyExists)
		got, err := b.AccountByIdentity(ctx, "oidc:google", "sub-1")
		must(t, "AccountByIdentity", err)
		same(t, "AccountByIdentity", got, a1)

		// (provider, subject) pairs that concatenate alike stay distinct.
		must(t, "LinkIdentity", b.LinkIdentity(ctx, "saml:a", "bc", "acct-2"))
		_, err = b.AccountByIdentity(ctx, "saml:ab", "c")
		wantErr(t, "AccountByIdentity neighbour", err, storage.ErrNotFound)
		_, err = b.AccountByIdentity(ctx, "oidc:other", "sub-1")
		wantErr(t, "AccountByIdentity other provider", err, storage.ErrNotFound)
	})
}
