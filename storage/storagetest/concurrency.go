package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// race runs fn(i) for i in [0, n) on n goroutines released together.
func race(n int, fn func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			fn(i)
		}()
	}
	start.Done()
	done.Wait()
}

func (s *suite) testConcurrency(t *testing.T) {
	t.Run("RedeemCodeExactlyOnce", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := newCode("code-1", "grant-1")
		must(t, "SaveCode", b.SaveCode(ctx, c))
		const n = 50
		var issued atomic.Int32
		errs := make([]error, n)
		recs := make([]storage.AuthCode, n)
		race(n, func(i int) {
			recs[i], errs[i] = b.RedeemCode(ctx, c.Hash, at(time.Second), func(in storage.AuthCode) (*storage.Grant, error) {
				issued.Add(1)
				return grantFrom(in, "refresh-1"), nil
			})
		})
		if got := issued.Load(); got != 1 {
			t.Fatalf("issue called %d times, want exactly 1", got)
		}
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, storage.ErrCodeUsed):
				if recs[i].GrantID != "grant-1" || recs[i].ClientID != c.ClientID || recs[i].UsedAt.IsZero() {
					t.Fatalf("ErrCodeUsed without the record: %+v", recs[i])
				}
			default:
				t.Fatalf("RedeemCode %d: %v, want nil or ErrCodeUsed", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d redemptions succeeded, want exactly 1", wins)
		}
		list, err := b.ListGrants(ctx, c.ClientID, "")
		must(t, "ListGrants", err)
		if len(list) != 1 {
			t.Fatalf("%d grants after the race, want 1", len(list))
		}
	})

	t.Run("RotateRefreshSerialized", func(t *testing.T) {
		// 50 rotations present the same current token r0, each with its own
		// Next. The store serializes them: the first rotates r0; with a
		// grace, the second is the one lost-response retry of the (now
		// previous) r0; the next one is reuse and revokes the family; every
		// later one finds it revoked. Without a grace there is no retry.
		for _, grace := range []time.Duration{testGrace, 0} {
			t.Run(fmt.Sprint("Grace", grace), func(t *testing.T) {
				b, ctx := s.backend(t), t.Context()
				must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
				const n = 50
				errs := make([]error, n)
				got := make([]storage.Grant, n)
				race(n, func(i int) {
					r := rotation("r0", fmt.Sprint("next-", i), at(time.Hour))
					r.Grace = grace
					got[i], errs[i] = b.RotateRefresh(ctx, r)
				})
				gens := map[int]int{} // generation -> rotation
				reused, revoked := 0, 0
				for i, err := range errs {
					switch {
					case err == nil:
						if !bytes.Equal(got[i].RefreshHash, Hash(fmt.Sprint("next-", i))) {
							t.Fatalf("rotation %d returned another current token", i)
						}
						if _, dup := gens[got[i].Generation]; dup {
							t.Fatalf("generation %d returned twice: rotations were not serialized", got[i].Generation)
						}
						gens[got[i].Generation] = i
					case errors.Is(err, storage.ErrRefreshReused):
						reused++
						if !got[i].Revoked() || got[i].RevokedReason != storage.ReasonRefreshReuse {
							t.Fatalf("grant returned with ErrRefreshReused: %+v", got[i])
						}
					case errors.Is(err, storage.ErrGrantRevoked):
						revoked++
					default:
						t.Fatalf("RotateRefresh %d: %v", i, err)
					}
				}
				wantWins := 1
				if grace > 0 {
					wantWins = 2
				}
				if len(gens) != wantWins || reused != 1 || revoked != n-wantWins-1 {
					t.Fatalf("%d rotations (generations %v), %d reuse, %d revoked; want %d, 1, %d", len(gens), gens, reused, revoked, wantWins, n-wantWins-1)
				}
				for gen := 1; gen <= wantWins; gen++ {
					if _, ok := gens[gen]; !ok {
						t.Fatalf("no rotation reached generation %d: %v", gen, gens)
					}
				}
				stored := getGrant(t, b, "grant-1")
				if !stored.Revoked() || stored.RevokedReason != storage.ReasonRefreshReuse || !bytes.Equal(stored.PreviousHash, Hash("r0")) ||
					!bytes.Equal(stored.RefreshHash, Hash(fmt.Sprint("next-", gens[wantWins]))) {
					t.Fatalf("stored grant after the race: %+v (generations %v)", stored, gens)
				}
				for _, i := range gens {
					_, err := b.RotateRefresh(ctx, rotation(fmt.Sprint("next-", i), fmt.Sprint("late-", i), at(2*time.Hour)))
					wantErr(t, "RotateRefresh after the family was revoked", err, storage.ErrGrantRevoked)
				}
			})
		}
	})

	t.Run("RotateRefreshReuseRacesRotation", func(t *testing.T) {
		// r0 -> r1 -> r2 makes r0 stale. Rotations of the current r2 race
		// presentations of the stale r0: whatever the order, exactly one
		// call revokes the family (ErrRefreshReused), the rotations that
		// ran before it succeed and every call after it is ErrGrantRevoked.
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		_, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Minute)))
		must(t, "RotateRefresh r0", err)
		_, err = b.RotateRefresh(ctx, rotation("r1", "r2", at(2*time.Minute)))
		must(t, "RotateRefresh r1", err)
		const n = 20
		errs := make([]error, n)
		race(n, func(i int) {
			presented := "r2"
			if i%2 == 1 {
				presented = "r0"
			}
			_, errs[i] = b.RotateRefresh(ctx, rotation(presented, fmt.Sprint("n-", i), at(time.Hour)))
		})
		reused := 0
		for i, err := range errs {
			switch {
			case errors.Is(err, storage.ErrRefreshReused):
				reused++
			case err == nil, errors.Is(err, storage.ErrGrantRevoked):
			default:
				t.Fatalf("RotateRefresh %d: %v", i, err)
			}
		}
		if reused != 1 {
			t.Fatalf("%d calls reported reuse, want exactly 1 (the revocation happens once)", reused)
		}
		stored := getGrant(t, b, "grant-1")
		if !stored.Revoked() {
			t.Fatal("family not revoked after reuse")
		}
	})

	t.Run("AddSigningKeyCAS", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		const n = 10
		errs := make([]error, n)
		race(n, func(i int) {
			errs[i] = b.AddSigningKey(ctx, newKey(fmt.Sprint("k", i), at(time.Duration(i)*time.Second)), "", at(time.Hour))
		})
		exactlyOneWon(t, "AddSigningKey", errs, storage.ErrConflict)
		list, err := b.ListSigningKeys(ctx)
		must(t, "ListSigningKeys", err)
		if len(list) != 1 || !list[0].RetiredAt.IsZero() {
			t.Fatalf("keys after the race: %+v", list)
		}
	})

	t.Run("TakeTicketOnce", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		tk := newTicket("oidc_state", "state-1")
		must(t, "PutTicket", b.PutTicket(ctx, tk))
		const n = 50
		errs := make([]error, n)
		race(n, func(i int) {
			_, errs[i] = b.TakeTicket(ctx, "oidc_state", tk.Hash, at(time.Second))
		})
		exactlyOneWon(t, "TakeTicket", errs, storage.ErrNotFound)
	})

	t.Run("CreateAccountEmailUnique", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		const n = 20
		errs := make([]error, n)
		race(n, func(i int) {
			email := "alice@example.com"
			if i%2 == 1 {
				email = strings.ToUpper(email)
			}
			errs[i] = b.CreateAccount(ctx, newAccount(fmt.Sprint("acct-", i), email))
		})
		exactlyOneWon(t, "CreateAccount", errs, storage.ErrAlreadyExists)
		list, err := b.ListAccounts(ctx)
		must(t, "ListAccounts", err)
		if len(list) != 1 {
			t.Fatalf("%d accounts stored, want 1", len(list))
		}
	})

	t.Run("CreateClientOnce", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		const n = 20
		errs := make([]error, n)
		race(n, func(i int) {
			c := newClient("client-1")
			c.Name = fmt.Sprint("writer-", i)
			errs[i] = b.CreateClient(ctx, c)
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("CreateClient succeeded twice (%d and %d)", winner, i)
				}
				winner = i
			case errors.Is(err, storage.ErrAlreadyExists):
			default:
				t.Fatalf("CreateClient %d: %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no CreateClient succeeded")
		}
		got, err := b.GetClient(ctx, "client-1")
		must(t, "GetClient", err)
		if got.Name != fmt.Sprint("writer-", winner) {
			t.Fatalf("stored client written by %q, winner was %d", got.Name, winner)
		}
	})

	t.Run("AppendAuditConcurrent", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		const n, per = 50, 4
		errs := make([]error, n)
		race(n, func(i int) {
			evs := make([]storage.AuditEvent, per)
			for j := range evs {
				evs[j] = event(fmt.Sprint("e-", i, "-", j), "", "", at(time.Duration(i)*time.Millisecond))
			}
			errs[i] = b.AppendAudit(ctx, evs...)
		})
		for i, err := range errs {
			must(t, fmt.Sprint("AppendAudit ", i), err)
		}
		got, err := b.ListAudit(ctx, storage.AuditQuery{Limit: n * per * 2})
		must(t, "ListAudit", err)
		if len(got) != n*per {
			t.Fatalf("ListAudit = %d events, want %d", len(got), n*per)
		}
		ids := map[string]bool{}
		for i, e := range got {
			if ids[e.ID] {
				t.Fatalf("duplicate event ID %q", e.ID)
			}
			ids[e.ID] = true
			if i > 0 && e.Time.After(got[i-1].Time) {
				t.Fatalf("events not newest first at %d", i)
			}
		}
	})
}

// exactlyOneWon asserts that of racing calls exactly one succeeded and every
// other one failed with loser (the "use once" contract).
func exactlyOneWon(t *testing.T, op string, errs []error, loser error) {
	t.Helper()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, loser):
		default:
			t.Fatalf("%s %d: %v, want nil or %v", op, i, err, loser)
		}
	}
	if wins != 1 {
		t.Fatalf("%s: %d calls succeeded, want exactly 1", op, wins)
	}
}
