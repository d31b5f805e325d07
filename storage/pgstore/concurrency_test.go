package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// twoInstances opens two stores (two pools: two Caddy instances) on one
// fresh schema.
func twoInstances(t *testing.T) (*Store, *Store) {
	t.Helper()
	schema := freshSchema(t)
	return openIn(t, schema), openIn(t, schema)
}

func testCode(name string) storage.AuthCode {
	return storage.AuthCode{
		Hash: hash(name), ClientID: "client", RedirectURI: "https://app.example/cb",
		CodeChallenge: "challenge", CodeChallengeMethod: "S256", Subject: "alice",
		Scopes: []string{"mcp"}, Resource: "https://mcp.example/", AuthTime: t0,
		GrantID: "grant-" + name, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute),
	}
}

func grantFor(c storage.AuthCode, refresh string) *storage.Grant {
	return &storage.Grant{
		ID: c.GrantID, ClientID: c.ClientID, Subject: c.Subject, Scopes: c.Scopes, Resource: c.Resource,
		AuthTime: c.AuthTime, RefreshHash: hash(refresh), CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour),
		RefreshExpiresAt: t0.Add(time.Hour),
	}
}

// TestRedeemCodeAcrossInstances: 16 redemptions of one code, split over two
// instances, race; exactly one calls issue and succeeds, the others get the
// record and ErrCodeUsed, and exactly one grant exists.
func TestRedeemCodeAcrossInstances(t *testing.T) {
	a, b := twoInstances(t)
	ctx := context.Background()
	code := testCode("race")
	if err := a.SaveCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var (
		wg      sync.WaitGroup
		issued  atomic.Int64
		won     atomic.Int64
		used    atomic.Int64
		mu      sync.Mutex
		unknown []error
	)
	start := make(chan struct{})
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			<-start
			got, err := st.RedeemCode(ctx, code.Hash, t0.Add(time.Second), func(c storage.AuthCode) (*storage.Grant, error) {
				issued.Add(1)
				return grantFor(c, fmt.Sprintf("refresh-%d", i)), nil
			})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, storage.ErrCodeUsed):
				used.Add(1)
				if got.GrantID != code.GrantID || got.UsedAt.IsZero() {
					mu.Lock()
					unknown = append(unknown, fmt.Errorf("ErrCodeUsed came with record %+v", got))
					mu.Unlock()
				}
			default:
				mu.Lock()
				unknown = append(unknown, err)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range unknown {
		t.Error(err)
	}
	if won.Load() != 1 || used.Load() != n-1 || issued.Load() != 1 {
		t.Fatalf("won=%d used=%d issue calls=%d, want 1, %d, 1", won.Load(), used.Load(), n-1, issued.Load())
	}
	grants, err := b.ListGrants(ctx, "client", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(grants) != 1 || grants[0].ID != code.GrantID {
		t.Fatalf("grants after the race: %+v, want exactly %s", grants, code.GrantID)
	}
}

func TestRedeemCodeFailures(t *testing.T) {
	ctx := context.Background()
	now := t0.Add(time.Second)
	t.Run("issue error burns the code and writes nothing else", func(t *testing.T) {
		s := openTest(t)
		code := testCode("issue-error")
		must(t, s.SaveCode(ctx, code))
		boom := errors.New("boom")
		got, err := s.RedeemCode(ctx, code.Hash, now, func(storage.AuthCode) (*storage.Grant, error) { return nil, boom })
		if !errors.Is(err, boom) || got.GrantID != code.GrantID {
			t.Fatalf("RedeemCode = %+v, %v; want the record and the issue error", got, err)
		}
		_, err = s.RedeemCode(ctx, code.Hash, now, func(storage.AuthCode) (*storage.Grant, error) {
			t.Fatal("issue called for a burned code")
			return nil, nil
		})
		if !errors.Is(err, storage.ErrCodeUsed) {
			t.Fatalf("second RedeemCode = %v, want ErrCodeUsed", err)
		}
		if gs, _ := s.ListGrants(ctx, "", ""); len(gs) != 0 {
			t.Fatalf("grants written: %+v", gs)
		}
	})
	t.Run("grant that cannot be stored burns the code", func(t *testing.T) {
		s := openTest(t)
		code := testCode("grant-conflict")
		must(t, s.SaveCode(ctx, code))
		existing := grantFor(code, "other")
		must(t, s.CreateGrant(ctx, *existing))
		got, err := s.RedeemCode(ctx, code.Hash, now, func(c storage.AuthCode) (*storage.Grant, error) {
			return grantFor(c, "fresh"), nil
		})
		if !errors.Is(err, storage.ErrAlreadyExists) || got.GrantID != code.GrantID {
			t.Fatalf("RedeemCode = %+v, %v; want the record and ErrAlreadyExists", got, err)
		}
		if _, err := s.GrantByRefresh(ctx, hash("fresh")); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("refresh token of the failed grant is registered: %v", err)
		}
		if _, err := s.RedeemCode(ctx, code.Hash, now, nil); !errors.Is(err, storage.ErrCodeUsed) {
			t.Fatalf("code after a failed grant: %v, want ErrCodeUsed", err)
		}
	})
	t.Run("invalid grant burns the code and writes nothing", func(t *testing.T) {
		s := openTest(t)
		code := testCode("invalid-grant")
		must(t, s.SaveCode(ctx, code))
		got, err := s.RedeemCode(ctx, code.Hash, now, func(c storage.AuthCode) (*storage.Grant, error) {
			g := grantFor(c, "x")
			g.RefreshHash = []byte("not a sha-256")
			return g, nil
		})
		if err == nil || got.GrantID != code.GrantID {
			t.Fatalf("RedeemCode = %+v, %v; want the record and an error", got, err)
		}
		if _, err := s.RedeemCode(ctx, code.Hash, now, nil); !errors.Is(err, storage.ErrCodeUsed) {
			t.Fatalf("code after an invalid grant: %v, want ErrCodeUsed", err)
		}
		if gs, _ := s.ListGrants(ctx, "", ""); len(gs) != 0 {
			t.Fatalf("grants written: %+v", gs)
		}
	})
	t.Run("expired and unknown codes", func(t *testing.T) {
		s := openTest(t)
		code := testCode("expired")
		must(t, s.SaveCode(ctx, code))
		for name, h := range map[string][]byte{"expired": code.Hash, "unknown": hash("nope")} {
			got, err := s.RedeemCode(ctx, h, code.ExpiresAt, func(storage.AuthCode) (*storage.Grant, error) {
				t.Fatal("issue called")
				return nil, nil
			})
			if !errors.Is(err, storage.ErrNotFound) || got.Hash != nil {
				t.Fatalf("%s: RedeemCode = %+v, %v; want zero record and ErrNotFound", name, got, err)
			}
		}
	})
}

// TestRotateRefreshAcrossInstances: concurrent rotations of one token from
// two instances serialize on the grant row. In the order the lock grants
// them, the first rotates the current token, the second is the one
// lost-response retry of the now previous token (within the grace), the
// third is reuse and revokes the family, and every later one finds it
// revoked, on both instances.
func TestRotateRefreshAcrossInstances(t *testing.T) {
	a, b := twoInstances(t)
	ctx := context.Background()
	g := grantFor(testCode("rot"), "r0")
	must(t, a.CreateGrant(ctx, *g))
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			<-start
			_, errs[i] = st.RotateRefresh(ctx, storage.Rotation{
				Presented: hash("r0"), Next: hash(fmt.Sprintf("r1-%d", i)),
				Now: t0.Add(time.Minute), NextExpiresAt: t0.Add(2 * time.Hour), Grace: time.Minute,
			})
		})
	}
	close(start)
	wg.Wait()
	wins, reused, revoked := 0, 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, storage.ErrRefreshReused):
			reused++
		case errors.Is(err, storage.ErrGrantRevoked):
			revoked++
		default:
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	if wins != 2 || reused != 1 || revoked != n-3 {
		t.Fatalf("%d rotations, %d reuse, %d revoked; want 2, 1, %d", wins, reused, revoked, n-3)
	}
	got, err := b.GetGrant(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 || string(got.PreviousHash) != string(hash("r0")) || !got.Revoked() || got.RevokedReason != storage.ReasonRefreshReuse {
		t.Fatalf("after the race: %+v", got)
	}
	for _, st := range []*Store{a, b} {
		if _, err := st.RotateRefresh(ctx, storage.Rotation{Presented: got.RefreshHash, Next: hash("r3"), Now: t0.Add(3 * time.Minute)}); !errors.Is(err, storage.ErrGrantRevoked) {
			t.Fatalf("current token after reuse: %v, want ErrGrantRevoked", err)
		}
	}
}

// TestRotateRefreshCheckAbortsWithoutChange: Check refuses inside the
// transaction and nothing changes, not even for a reused token.
func TestRotateRefreshCheckAbortsWithoutChange(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	g := grantFor(testCode("chk"), "r0")
	must(t, s.CreateGrant(ctx, *g))
	refuse := errors.New("wrong client")
	for _, presented := range []string{"r0", "unknown-to-grant"} {
		_, err := s.RotateRefresh(ctx, storage.Rotation{
			Presented: hash(presented), Next: hash("r1"), Now: t0.Add(time.Minute),
			Check: func(storage.Grant) error { return refuse },
		})
		if presented == "r0" && !errors.Is(err, refuse) {
			t.Fatalf("RotateRefresh = %v, want the Check error", err)
		}
		if presented != "r0" && !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("RotateRefresh(unknown) = %v, want ErrNotFound", err)
		}
	}
	got, err := s.GetGrant(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 0 || got.Revoked() || string(got.RefreshHash) != string(hash("r0")) {
		t.Fatalf("grant changed by a refused rotation: %+v", got)
	}
	if _, err := s.GrantByRefresh(ctx, hash("r1")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("next token registered by a refused rotation: %v", err)
	}
}

// TestAddSigningKeyAcrossInstances: instances racing to rotate from the
// same active key: exactly one wins, the others get ErrConflict.
func TestAddSigningKeyAcrossInstances(t *testing.T) {
	a, b := twoInstances(t)
	ctx := context.Background()
	must(t, a.AddSigningKey(ctx, storage.SigningKey{ID: "k0", Algorithm: "ES256", PrivateJWK: []byte(`{}`), CreatedAt: t0}, "", time.Time{}))
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			<-start
			errs[i] = st.AddSigningKey(ctx, storage.SigningKey{ID: fmt.Sprintf("k1-%d", i), Algorithm: "ES256",
				PrivateJWK: []byte(`{}`), CreatedAt: t0.Add(time.Hour)}, "k0", t0.Add(2*time.Hour))
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("AddSigningKey %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d rotations won, want exactly 1", wins)
	}
	keys, err := b.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "k0" || !keys[0].RetiredAt.Equal(t0.Add(time.Hour)) || !keys[0].PublishUntil.Equal(t0.Add(2*time.Hour)) || !keys[1].RetiredAt.IsZero() {
		t.Fatalf("keys after the race: %+v", keys)
	}
	if err := a.DeleteSigningKey(ctx, keys[1].ID); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("deleting the active key: %v, want ErrConflict", err)
	}
}

// TestTakeTicketAcrossInstances: exactly one of concurrent takers gets a
// ticket.
func TestTakeTicketAcrossInstances(t *testing.T) {
	a, b := twoInstances(t)
	ctx := context.Background()
	must(t, a.PutTicket(ctx, storage.Ticket{Kind: "oidc", Hash: hash("state"), Value: []byte("v"), ExpiresAt: t0.Add(time.Minute)}))
	const n = 10
	var wg sync.WaitGroup
	var took, missed atomic.Int64
	start := make(chan struct{})
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			<-start
			tk, err := st.TakeTicket(ctx, "oidc", hash("state"), t0)
			switch {
			case err == nil && string(tk.Value) == "v":
				took.Add(1)
			case errors.Is(err, storage.ErrNotFound):
				missed.Add(1)
			default:
				t.Errorf("TakeTicket: %+v, %v", tk, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if took.Load() != 1 || missed.Load() != n-1 {
		t.Fatalf("took=%d missed=%d, want 1 and %d", took.Load(), missed.Load(), n-1)
	}
}

func TestTakeTicketRefusalLeavesTicket(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	tk := storage.Ticket{Kind: "oidc", Hash: hash("state"), Value: []byte("v"), ExpiresAt: t0.Add(time.Minute)}
	must(t, s.PutTicket(ctx, tk))
	if _, err := s.TakeTicket(ctx, "saml", tk.Hash, t0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("other kind: %v, want ErrNotFound", err)
	}
	if _, err := s.TakeTicket(ctx, "oidc", tk.Hash, tk.ExpiresAt); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired: %v, want ErrNotFound", err)
	}
	got, err := s.TakeTicket(ctx, "oidc", tk.Hash, t0)
	if err != nil || string(got.Value) != "v" || string(got.Hash) != string(tk.Hash) {
		t.Fatalf("take after refusals: %+v, %v", got, err)
	}
}

// TestAuditIDsAcrossInstances: events appended concurrently by two
// instances get unique ids and list newest first.
func TestAuditIDsAcrossInstances(t *testing.T) {
	a, b := twoInstances(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			if err := st.AppendAudit(ctx, storage.AuditEvent{Time: t0.Add(time.Duration(i) * time.Second), Type: "token.issued", ClientID: "c"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	evs, err := a.ListAudit(ctx, storage.AuditQuery{Type: "token.", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 20 {
		t.Fatalf("%d events, want 20", len(evs))
	}
	seen := map[string]bool{}
	for i, e := range evs {
		if e.ID == "" || seen[e.ID] {
			t.Fatalf("event %d: empty or duplicate id %q", i, e.ID)
		}
		seen[e.ID] = true
		if want := t0.Add(time.Duration(19-i) * time.Second); !e.Time.Equal(want) {
			t.Fatalf("event %d at %v, want %v (newest first)", i, e.Time, want)
		}
		if i > 0 && e.ID >= evs[i-1].ID {
			t.Fatalf("ids not time-ordered: %q after %q", e.ID, evs[i-1].ID)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
