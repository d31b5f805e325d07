package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// testSnapshot runs the export/import cases from the backend under test
// into another fresh instance of the same backend.
func (s *suite) testSnapshot(t *testing.T) {
	RunSnapshot(t, s.open, s.open)
}

// RunSnapshot checks storage.Snapshotter between two backends: openSrc
// and openDst each return a fresh, empty backend (closed by RunSnapshot
// when the subtest ends); both must implement storage.Snapshotter. A
// source filled through the normal API (every record kind, a rotated
// refresh family, a revoked grant, used and unused codes, audit events of
// equal and distinct times) is exported and imported; then every Get/List
// must agree, a retired refresh token must still be detected as reuse, the
// used code must still be ErrCodeUsed and the audit log must keep its ids
// and order. Backends pass it across each other too (bbolt -> postgres).
func RunSnapshot(t *testing.T, openSrc, openDst func(t *testing.T) storage.Backend) {
	t.Helper()
	src := &suite{open: openSrc}
	dst := &suite{open: openDst}
	snap := func(t *testing.T, b storage.Backend) storage.Snapshotter {
		t.Helper()
		sn, ok := b.(storage.Snapshotter)
		if !ok {
			t.Fatalf("backend %T does not implement storage.Snapshotter", b)
		}
		return sn
	}

	t.Run("RoundTrip", func(t *testing.T) {
		ctx := t.Context()
		a := src.backend(t)
		fillSnapshot(t, a)
		recs := exportAll(t, snap(t, a))
		checkExportOrder(t, recs)
		counts := map[string]int{}
		for _, r := range recs {
			counts[r.Kind]++
		}
		same(t, "records per kind", counts, map[string]int{
			storage.KindClient: 2, storage.KindSigningKey: 2, storage.KindAccount: 2,
			storage.KindIdentity: 2, storage.KindConsent: 2, storage.KindGrant: 4,
			storage.KindCode: 2, storage.KindSession: 2, storage.KindTicket: 1,
			storage.KindAudit: 5,
		})
		for _, r := range recs {
			if r.Kind == storage.KindGrant && r.Grant.ID == "grant-1" && len(r.RefreshHashes) != 3 {
				t.Fatalf("grant-1 exported with %d refresh hashes, want 3 (r0, r1, r2)", len(r.RefreshHashes))
			}
		}

		b := dst.backend(t)
		must(t, "Import", snap(t, b).Import(ctx, iter(recs)))
		compareStores(t, a, b)
		same(t, "re-export", canonical(exportAll(t, snap(t, b))), canonical(recs))

		t.Run("UsedCodeStaysUsed", func(t *testing.T) {
			called := false
			got, err := b.RedeemCode(ctx, Hash("code-used"), at(10*time.Second), func(storage.AuthCode) (*storage.Grant, error) {
				called = true
				return nil, nil
			})
			wantErr(t, "RedeemCode used code", err, storage.ErrCodeUsed)
			if called {
				t.Fatal("issue called for a used code")
			}
			if got.GrantID != "grant-1" || got.UsedAt.IsZero() {
				t.Fatalf("used code returned %+v, want grant-1 with UsedAt set", got)
			}
		})
		t.Run("UnusedCodeRedeemsOnce", func(t *testing.T) {
			_, err := b.RedeemCode(ctx, Hash("code-fresh"), at(10*time.Second), func(c storage.AuthCode) (*storage.Grant, error) {
				return grantFrom(c, "fresh-r0"), nil
			})
			must(t, "RedeemCode fresh code", err)
			_, err = b.RedeemCode(ctx, Hash("code-fresh"), at(11*time.Second), func(storage.AuthCode) (*storage.Grant, error) {
				return nil, nil
			})
			wantErr(t, "RedeemCode replay", err, storage.ErrCodeUsed)
		})
		t.Run("RefreshFamily", func(t *testing.T) {
			for _, tok := range []string{"r0", "r1", "r2"} {
				g, err := b.GrantByRefresh(ctx, Hash(tok))
				must(t, "GrantByRefresh "+tok, err)
				if g.ID != "grant-1" {
					t.Fatalf("GrantByRefresh %s = %s, want grant-1", tok, g.ID)
				}
			}
			// The current token rotates; an old one is reuse and ends the family.
			g, err := b.RotateRefresh(ctx, rotation("r2", "r3", at(20*time.Second)))
			must(t, "RotateRefresh current", err)
			if g.Generation != 3 {
				t.Fatalf("generation after rotation = %d, want 3", g.Generation)
			}
			_, err = b.RotateRefresh(ctx, rotation("r0", "r9", at(21*time.Second)))
			wantErr(t, "RotateRefresh retired token", err, storage.ErrRefreshReused)
			if !getGrant(t, b, "grant-1").Revoked() {
				t.Fatal("family not revoked after reuse")
			}
			_, err = b.RotateRefresh(ctx, rotation("r3", "r10", at(22*time.Second)))
			wantErr(t, "RotateRefresh after reuse", err, storage.ErrGrantRevoked)
		})
		t.Run("UsedGraceStaysUsed", func(t *testing.T) {
			// The retry was spent before the move: the rotated-out token is
			// reuse on the new store, even inside the window.
			_, err := b.RotateRefresh(ctx, rotation("g0", "g9", at(4*time.Second)))
			wantErr(t, "RotateRefresh spent retry", err, storage.ErrRefreshReused)
		})
		t.Run("RevokedGrantStaysRevoked", func(t *testing.T) {
			_, err := b.RotateRefresh(ctx, rotation("revoked-r0", "revoked-r1", at(time.Minute)))
			wantErr(t, "RotateRefresh revoked grant", err, storage.ErrGrantRevoked)
		})
		t.Run("TicketTakenOnce", func(t *testing.T) {
			_, err := b.TakeTicket(ctx, "oidc", Hash("ticket-1"), at(time.Second))
			must(t, "TakeTicket", err)
			_, err = b.TakeTicket(ctx, "oidc", Hash("ticket-1"), at(time.Second))
			wantErr(t, "TakeTicket again", err, storage.ErrNotFound)
		})
	})

	runCopy(t, src, dst, snap)

	t.Run("RefusesNonEmptyDestination", func(t *testing.T) {
		ctx := t.Context()
		a := src.backend(t)
		fillSnapshot(t, a)
		recs := exportAll(t, snap(t, a))
		b := dst.backend(t)
		must(t, "CreateClient", b.CreateClient(ctx, newClient("already-here")))
		before := canonical(exportAll(t, snap(t, b)))
		wantErr(t, "Import into non-empty store", snap(t, b).Import(ctx, iter(recs)), storage.ErrNotEmpty)
		same(t, "destination after refused import", canonical(exportAll(t, snap(t, b))), before)
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		ctx := t.Context()
		a := src.backend(t)
		fillSnapshot(t, a)
		recs := exportAll(t, snap(t, a))
		b := dst.backend(t)
		cases := []struct {
			name string
			next func() (storage.Record, error)
			want error
		}{
			{"SourceFailsMidway", failAfter(recs, len(recs)-1), errTest},
			{"InvalidRecord", iter(append(slices.Clone(recs), storage.Record{Kind: storage.KindClient})), nil},
			{"UnknownKind", iter(append(slices.Clone(recs), storage.Record{Kind: "bogus"})), nil},
			{"DuplicateRecord", iter(append(slices.Clone(recs), recs[0])), storage.ErrAlreadyExists},
			{"UnhashedCode", iter(append(slices.Clone(recs), storage.Record{Kind: storage.KindCode,
				Code: &storage.AuthCode{Hash: []byte("plain-code"), ExpiresAt: at(time.Minute)}})), nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := snap(t, b).Import(ctx, c.next)
				if err == nil {
					t.Fatal("Import succeeded, want an error")
				}
				if c.want != nil {
					wantErr(t, "Import", err, c.want)
				}
				if n := len(exportAll(t, snap(t, b))); n != 0 {
					t.Fatalf("failed import left %d records behind", n)
				}
			})
		}
		// After every failure the same import simply runs again.
		must(t, "Import after failures", snap(t, b).Import(ctx, iter(recs)))
		compareStores(t, a, b)
	})

	t.Run("ExportStopsOnEmitError", func(t *testing.T) {
		a := src.backend(t)
		fillSnapshot(t, a)
		calls := 0
		err := snap(t, a).Export(t.Context(), func(storage.Record) error {
			calls++
			return errTest
		})
		wantErr(t, "Export", err, errTest)
		if calls != 1 {
			t.Fatalf("emit called %d times after failing, want 1", calls)
		}
	})

	t.Run("EmptyStore", func(t *testing.T) {
		a := src.backend(t)
		recs := exportAll(t, snap(t, a))
		if len(recs) != 0 {
			t.Fatalf("empty store exported %d records", len(recs))
		}
		b := dst.backend(t)
		must(t, "Import nothing", snap(t, b).Import(t.Context(), iter(nil)))
		must(t, "Import nothing again", snap(t, b).Import(t.Context(), iter(nil)))
	})
}

// fillSnapshot fills b through the normal API with every record kind.
func fillSnapshot(t *testing.T, b storage.Backend) {
	t.Helper()
	ctx := t.Context()
	must(t, "CreateClient", b.CreateClient(ctx, newClient("client-1")))
	c2 := newClient("client-2")
	c2.Kind, c2.TokenEndpointAuthMethod = storage.ClientOwned, "client_secret_basic"
	must(t, "CreateClient", b.CreateClient(ctx, c2))
	must(t, "SetClientDisabled", b.SetClientDisabled(ctx, "client-2", true, at(time.Hour)))
	must(t, "TouchClient", b.TouchClient(ctx, "client-1", at(2*time.Hour)))

	must(t, "AddSigningKey", b.AddSigningKey(ctx, newKey("kid-1", at(0)), "", time.Time{}))
	must(t, "AddSigningKey", b.AddSigningKey(ctx, newKey("kid-2", at(time.Hour)), "kid-1", at(2*time.Hour)))

	must(t, "CreateAccount", b.CreateAccount(ctx, newAccount("acct-1", "alice@example.com")))
	a2 := newAccount("acct-2", "")
	a2.PasswordHash, a2.Disabled = "", true
	must(t, "CreateAccount", b.CreateAccount(ctx, a2))
	must(t, "LinkIdentity", b.LinkIdentity(ctx, "oidc:google", "1234567890", "acct-1"))
	must(t, "LinkIdentity", b.LinkIdentity(ctx, "saml:okta", "alice@corp", "acct-2"))

	must(t, "PutConsent", b.PutConsent(ctx, newConsent("acct-1", "client-1")))
	must(t, "PutConsent", b.PutConsent(ctx, newConsent("acct-2", "client-22")))

	// A used code whose grant was rotated twice: r0 -> r1 -> r2.
	must(t, "SaveCode", b.SaveCode(ctx, newCode("code-used", "grant-1")))
	_, err := b.RedeemCode(ctx, Hash("code-used"), at(time.Second), func(c storage.AuthCode) (*storage.Grant, error) {
		return grantFrom(c, "r0"), nil
	})
	must(t, "RedeemCode", err)
	_, err = b.RotateRefresh(ctx, rotation("r0", "r1", at(2*time.Second)))
	must(t, "RotateRefresh", err)
	_, err = b.RotateRefresh(ctx, rotation("r1", "r2", at(3*time.Second)))
	must(t, "RotateRefresh", err)
	// A grant whose rotated-out token had its one lost-response retry.
	must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-grace", "client-1", "acct-1", "g0")))
	_, err = b.RotateRefresh(ctx, rotation("g0", "g1", at(2*time.Second)))
	must(t, "RotateRefresh", err)
	_, err = b.RotateRefresh(ctx, rotation("g0", "g2", at(3*time.Second)))
	must(t, "RotateRefresh retry", err)
	// An unused code.
	fresh := newCode("code-fresh", "grant-fresh")
	fresh.Subject = "acct-1"
	must(t, "SaveCode", b.SaveCode(ctx, fresh))
	// A revoked grant and a grant without refresh token.
	must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-revoked", "client-1", "acct-2", "revoked-r0")))
	must(t, "RevokeGrant", b.RevokeGrant(ctx, "grant-revoked", "user_logout", at(4*time.Second)))
	must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-plain", "client-2", "acct-1", "")))

	must(t, "CreateSession", b.CreateSession(ctx, newSession("sid-1", "acct-1")))
	must(t, "CreateSession", b.CreateSession(ctx, newSession("sid-2", "acct-2")))
	must(t, "TouchSession", b.TouchSession(ctx, Hash("sid-1"), at(time.Minute)))
	must(t, "PutTicket", b.PutTicket(ctx, newTicket("oidc", "ticket-1")))

	// Audit: two batches, equal times among them, one without detail.
	must(t, "AppendAudit", b.AppendAudit(ctx,
		event("login.success", "acct-1", "", at(time.Second)),
		event("token.issued", "acct-1", "client-1", at(2*time.Second)),
		event("token.refreshed", "acct-1", "client-1", at(2*time.Second)),
	))
	last := event("grant.revoked", "acct-2", "client-1", at(2*time.Second))
	last.Detail, last.IP = nil, ""
	must(t, "AppendAudit", b.AppendAudit(ctx, last, event("login.failure", "bob", "", at(time.Millisecond))))
}

func exportAll(t *testing.T, sn storage.Snapshotter) []storage.Record {
	t.Helper()
	var out []storage.Record
	must(t, "Export", sn.Export(t.Context(), func(r storage.Record) error {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("exported record: %w", err)
		}
		out = append(out, r)
		return nil
	}))
	return out
}

// iter returns a next function over recs that ends with io.EOF.
func iter(recs []storage.Record) func() (storage.Record, error) {
	i := 0
	return func() (storage.Record, error) {
		if i == len(recs) {
			return storage.Record{}, io.EOF
		}
		i++
		return recs[i-1], nil
	}
}

// failAfter returns n records of recs, then errTest.
func failAfter(recs []storage.Record, n int) func() (storage.Record, error) {
	next := iter(recs[:n])
	return func() (storage.Record, error) {
		r, err := next()
		if errors.Is(err, io.EOF) {
			return storage.Record{}, errTest
		}
		return r, err
	}
}

// checkExportOrder fails unless kinds come in storage.RecordKinds order.
func checkExportOrder(t *testing.T, recs []storage.Record) {
	t.Helper()
	last := -1
	for i, r := range recs {
		k := slices.Index(storage.RecordKinds, r.Kind)
		if k < last {
			t.Fatalf("record %d of kind %s comes after kind %s", i, r.Kind, storage.RecordKinds[last])
		}
		last = k
	}
	var prev time.Time
	for _, r := range recs {
		if r.Kind != storage.KindAudit {
			continue
		}
		if r.Audit.Time.Before(prev) {
			t.Fatalf("audit events not oldest first: %v after %v", r.Audit.Time, prev)
		}
		prev = r.Audit.Time
	}
}

// canonical sorts records by kind, then by key (audit events keep their
// order: it is part of the data), and sorts each family's hashes, so that
// exports of different backends compare equal.
func canonical(recs []storage.Record) []storage.Record {
	out := slices.Clone(recs)
	for i := range out {
		if out[i].RefreshHashes != nil {
			out[i].RefreshHashes = slices.Clone(out[i].RefreshHashes)
			slices.SortFunc(out[i].RefreshHashes, bytes.Compare)
		}
	}
	key := func(r storage.Record) string {
		switch r.Kind {
		case storage.KindClient:
			return r.Client.ID
		case storage.KindSigningKey:
			return r.Key.ID
		case storage.KindAccount:
			return r.Account.ID
		case storage.KindIdentity:
			return r.Identity.Provider + "\x00" + r.Identity.Subject
		case storage.KindConsent:
			return r.Consent.ClientID + "\x00" + r.Consent.Subject
		case storage.KindGrant:
			return r.Grant.ID
		case storage.KindCode:
			return string(r.Code.Hash)
		case storage.KindSession:
			return string(r.Session.Hash)
		case storage.KindTicket:
			return string(r.Ticket.Hash)
		}
		return ""
	}
	slices.SortStableFunc(out, func(a, b storage.Record) int {
		if c := slices.Index(storage.RecordKinds, a.Kind) - slices.Index(storage.RecordKinds, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(key(a), key(b))
	})
	return out
}

// compareStores fails unless every Get and List of a and b agree on the
// records fillSnapshot wrote.
func compareStores(t *testing.T, a, b storage.Backend) {
	t.Helper()
	ctx := t.Context()
	sortClients := func(cs []storage.Client) []storage.Client {
		slices.SortFunc(cs, func(x, y storage.Client) int { return strings.Compare(x.ID, y.ID) })
		return cs
	}
	sortAccounts := func(as []storage.Account) []storage.Account {
		slices.SortFunc(as, func(x, y storage.Account) int { return strings.Compare(x.ID, y.ID) })
		return as
	}
	pair := func(what string, get func(storage.Backend) (any, error)) {
		t.Helper()
		x, errA := get(a)
		y, errB := get(b)
		if (errA == nil) != (errB == nil) || (errA != nil && !sameSentinel(errA, errB)) {
			t.Fatalf("%s: source error %v, destination error %v", what, errA, errB)
		}
		same(t, what, y, x)
	}
	pair("ListClients", func(s storage.Backend) (any, error) {
		cs, err := s.ListClients(ctx)
		return sortClients(cs), err
	})
	for _, id := range []string{"client-1", "client-2", "nope"} {
		pair("GetClient "+id, func(s storage.Backend) (any, error) { return s.GetClient(ctx, id) })
	}
	pair("ListSigningKeys", func(s storage.Backend) (any, error) { return s.ListSigningKeys(ctx) })
	pair("ListAccounts", func(s storage.Backend) (any, error) {
		as, err := s.ListAccounts(ctx)
		return sortAccounts(as), err
	})
	for _, id := range []string{"acct-1", "acct-2"} {
		pair("GetAccount "+id, func(s storage.Backend) (any, error) { return s.GetAccount(ctx, id) })
	}
	pair("GetAccountByEmail", func(s storage.Backend) (any, error) { return s.GetAccountByEmail(ctx, "ALICE@example.com") })
	pair("AccountByIdentity oidc", func(s storage.Backend) (any, error) {
		return s.AccountByIdentity(ctx, "oidc:google", "1234567890")
	})
	pair("AccountByIdentity saml", func(s storage.Backend) (any, error) { return s.AccountByIdentity(ctx, "saml:okta", "alice@corp") })
	pair("GetConsent", func(s storage.Backend) (any, error) { return s.GetConsent(ctx, "acct-1", "client-1") })
	pair("GetConsent 2", func(s storage.Backend) (any, error) { return s.GetConsent(ctx, "acct-2", "client-22") })
	pair("ListGrants", func(s storage.Backend) (any, error) { return s.ListGrants(ctx, "", "") })
	pair("ListGrants client", func(s storage.Backend) (any, error) { return s.ListGrants(ctx, "client-1", "") })
	pair("ListGrants subject", func(s storage.Backend) (any, error) { return s.ListGrants(ctx, "", "acct-1") })
	for _, id := range []string{"grant-1", "grant-revoked", "grant-plain"} {
		pair("GetGrant "+id, func(s storage.Backend) (any, error) { return s.GetGrant(ctx, id) })
	}
	for _, tok := range []string{"r0", "r1", "r2", "revoked-r0"} {
		pair("GrantByRefresh "+tok, func(s storage.Backend) (any, error) { return s.GrantByRefresh(ctx, Hash(tok)) })
	}
	for _, sid := range []string{"sid-1", "sid-2"} {
		pair("GetSession "+sid, func(s storage.Backend) (any, error) { return s.GetSession(ctx, Hash(sid)) })
	}
	pair("ListAudit", func(s storage.Backend) (any, error) { return s.ListAudit(ctx, storage.AuditQuery{Limit: 1000}) })
	pair("ListAudit filtered", func(s storage.Backend) (any, error) {
		return s.ListAudit(ctx, storage.AuditQuery{Type: "token.", Since: at(2 * time.Second)})
	})
	// Codes and tickets have no read without side effects: the exports
	// carry them (compared by the callers).
}

func sameSentinel(a, b error) bool {
	for _, s := range []error{storage.ErrNotFound, storage.ErrAlreadyExists, storage.ErrConflict} {
		if errors.Is(a, s) {
			return errors.Is(b, s)
		}
	}
	return true
}
