package storagetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

func (s *suite) testGrants(t *testing.T) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		same(t, "GetGrant", getGrant(t, b, g.ID), g)
		got, err := b.GrantByRefresh(ctx, Hash("r0"))
		must(t, "GrantByRefresh", err)
		same(t, "GrantByRefresh", got, g)
	})
	t.Run("GrantWithoutRefreshToken", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		same(t, "GetGrant", getGrant(t, b, g.ID), g)
	})
	t.Run("CreateDuplicateIDRefused", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		other := newGrant("grant-1", "client-2", "user-2", "r1")
		wantErr(t, "CreateGrant duplicate id", b.CreateGrant(ctx, other), storage.ErrAlreadyExists)
		same(t, "grant after refused create", getGrant(t, b, g.ID), g)
		_, err := b.GrantByRefresh(ctx, Hash("r1"))
		wantErr(t, "GrantByRefresh of the refused token", err, storage.ErrNotFound)
		list, err := b.ListGrants(ctx, "client-2", "")
		must(t, "ListGrants", err)
		if len(list) != 0 {
			t.Fatalf("refused grant is listed: %+v", list)
		}
	})
	t.Run("CreateDuplicateRefreshRefused", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		wantErr(t, "CreateGrant duplicate refresh", b.CreateGrant(ctx, newGrant("grant-2", "client-1", "user-1", "r0")), storage.ErrAlreadyExists)
		_, err := b.GetGrant(ctx, "grant-2")
		wantErr(t, "GetGrant refused", err, storage.ErrNotFound)
		got, err := b.GrantByRefresh(ctx, Hash("r0"))
		must(t, "GrantByRefresh", err)
		same(t, "GrantByRefresh", got, g)
	})
	t.Run("DPoPBindingKeptOnRotation", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		g.DPoPJKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		var checked storage.Grant
		r := rotation("r0", "r1", at(time.Hour))
		r.Check = func(in storage.Grant) error { checked = in; return nil }
		got, err := b.RotateRefresh(ctx, r)
		must(t, "RotateRefresh", err)
		if checked.DPoPJKT != g.DPoPJKT || got.DPoPJKT != g.DPoPJKT || getGrant(t, b, g.ID).DPoPJKT != g.DPoPJKT {
			t.Fatalf("binding lost: checked %q, rotated %q", checked.DPoPJKT, got.DPoPJKT)
		}
		byRefresh, err := b.GrantByRefresh(ctx, Hash("r1"))
		must(t, "GrantByRefresh", err)
		if byRefresh.DPoPJKT != g.DPoPJKT {
			t.Fatal("binding lost on lookup by refresh token")
		}
	})
	t.Run("GetUnknown", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		_, err := b.GetGrant(ctx, "nope")
		wantErr(t, "GetGrant", err, storage.ErrNotFound)
		_, err = b.GrantByRefresh(ctx, Hash("nope"))
		wantErr(t, "GrantByRefresh", err, storage.ErrNotFound)
	})
	t.Run("RotateCurrent", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		var checked storage.Grant
		r := rotation("r0", "r1", at(time.Hour))
		r.Check = func(in storage.Grant) error { checked = in; return nil }
		got, err := b.RotateRefresh(ctx, r)
		must(t, "RotateRefresh", err)
		same(t, "grant handed to Check", checked, g)
		want := g
		want.RefreshHash, want.PreviousHash = Hash("r1"), Hash("r0")
		want.PreviousRetiredAt = r.Now
		want.Generation = 1
		want.RefreshExpiresAt = r.NextExpiresAt
		same(t, "rotated grant", got, want)
		same(t, "stored grant", getGrant(t, b, g.ID), want)
		for _, tok := range []string{"r0", "r1"} {
			byRefresh, err := b.GrantByRefresh(ctx, Hash(tok))
			must(t, "GrantByRefresh "+tok, err)
			same(t, "GrantByRefresh "+tok, byRefresh, want)
		}
		// And again: r1 is current now.
		got, err = b.RotateRefresh(ctx, rotation("r1", "r2", at(2*time.Hour)))
		must(t, "RotateRefresh r1", err)
		if !bytes.Equal(got.RefreshHash, Hash("r2")) || !bytes.Equal(got.PreviousHash, Hash("r1")) || got.Generation != 2 {
			t.Fatalf("second rotation: %+v", got)
		}
	})
	t.Run("LostResponseRetryReplacesUnusedCurrent", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		_, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Hour)))
		must(t, "RotateRefresh r0", err)
		// The client never saw r1 and retries with r0.
		got, err := b.RotateRefresh(ctx, rotation("r0", "r2", at(time.Hour+time.Second)))
		must(t, "RotateRefresh retry of r0", err)
		if !bytes.Equal(got.RefreshHash, Hash("r2")) || !bytes.Equal(got.PreviousHash, Hash("r0")) || got.Generation != 2 || got.Revoked() ||
			!got.PreviousUsed || !got.PreviousRetiredAt.Equal(at(time.Hour)) {
			t.Fatalf("retry: %+v", got)
		}
		// r1 was replaced: presenting it now is reuse.
		got, err = b.RotateRefresh(ctx, rotation("r1", "r3", at(2*time.Hour)))
		wantErr(t, "RotateRefresh replaced r1", err, storage.ErrRefreshReused)
		if !got.RevokedAt.Equal(at(2*time.Hour)) || got.RevokedReason != storage.ReasonRefreshReuse || got.ID != "grant-1" {
			t.Fatalf("grant returned with ErrRefreshReused: %+v", got)
		}
		stored := getGrant(t, b, "grant-1")
		if !stored.RevokedAt.Equal(at(2*time.Hour)) || stored.RevokedReason != storage.ReasonRefreshReuse {
			t.Fatalf("stored grant not revoked: %+v", stored)
		}
		_, err = b.GrantByRefresh(ctx, Hash("r3"))
		wantErr(t, "GrantByRefresh r3 (never issued)", err, storage.ErrNotFound)
	})
	t.Run("GraceRetryIsSingleUse", func(t *testing.T) {
		// Requirement 37: the lost-response retry of the rotated-out token
		// works once; a second use of it is reuse and ends the family,
		// including the token the retry issued.
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		_, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Hour)))
		must(t, "RotateRefresh r0", err)
		_, err = b.RotateRefresh(ctx, rotation("r0", "r2", at(time.Hour+time.Second)))
		must(t, "first retry of r0", err)
		got, err := b.RotateRefresh(ctx, rotation("r0", "r3", at(time.Hour+2*time.Second)))
		wantErr(t, "second retry of r0", err, storage.ErrRefreshReused)
		if !got.RevokedAt.Equal(at(time.Hour+2*time.Second)) || got.RevokedReason != storage.ReasonRefreshReuse {
			t.Fatalf("grant returned with ErrRefreshReused: %+v", got)
		}
		_, err = b.RotateRefresh(ctx, rotation("r2", "r4", at(time.Hour+3*time.Second)))
		wantErr(t, "RotateRefresh of the retry's token after reuse", err, storage.ErrGrantRevoked)
		_, err = b.GrantByRefresh(ctx, Hash("r3"))
		wantErr(t, "GrantByRefresh r3 (never issued)", err, storage.ErrNotFound)
	})
	t.Run("GraceRetryIsTimeBound", func(t *testing.T) {
		// The window is [retired, retired+Grace): at its end, the
		// rotated-out token is reuse.
		for _, c := range []struct {
			name  string
			after time.Duration
			want  error
		}{
			{"JustInside", testGrace - time.Microsecond, nil},
			{"AtTheEnd", testGrace, storage.ErrRefreshReused},
			{"LongAfter", 30 * time.Minute, storage.ErrRefreshReused},
		} {
			t.Run(c.name, func(t *testing.T) {
				b, ctx := s.backend(t), t.Context()
				must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
				_, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Hour)))
				must(t, "RotateRefresh r0", err)
				_, err = b.RotateRefresh(ctx, rotation("r0", "r2", at(time.Hour+c.after)))
				wantErr(t, "retry of r0", err, c.want)
				stored := getGrant(t, b, "grant-1")
				if revoked := c.want != nil; stored.Revoked() != revoked {
					t.Fatalf("stored grant revoked = %v, want %v: %+v", stored.Revoked(), revoked, stored)
				}
			})
		}
	})
	t.Run("StrictRotationWithoutGrace", func(t *testing.T) {
		// Grace zero (refresh_grace 0): the rotated-out token is reuse at
		// once, even in the same instant.
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		r := rotation("r0", "r1", at(time.Hour))
		r.Grace = 0
		_, err := b.RotateRefresh(ctx, r)
		must(t, "RotateRefresh r0", err)
		r = rotation("r0", "r2", at(time.Hour))
		r.Grace = 0
		_, err = b.RotateRefresh(ctx, r)
		wantErr(t, "strict retry of r0", err, storage.ErrRefreshReused)
		_, err = b.RotateRefresh(ctx, rotation("r1", "r3", at(time.Hour+time.Second)))
		wantErr(t, "RotateRefresh r1 after reuse", err, storage.ErrGrantRevoked)
	})
	t.Run("GraceRenewsWithEachRotation", func(t *testing.T) {
		// A retry does not extend the window; the next normal rotation
		// opens a fresh one for the token it retires.
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		_, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Hour)))
		must(t, "RotateRefresh r0", err)
		_, err = b.RotateRefresh(ctx, rotation("r0", "r2", at(time.Hour+10*time.Second)))
		must(t, "retry of r0", err)
		got, err := b.RotateRefresh(ctx, rotation("r2", "r3", at(time.Hour+50*time.Second)))
		must(t, "RotateRefresh r2", err)
		if !bytes.Equal(got.PreviousHash, Hash("r2")) || got.PreviousUsed || !got.PreviousRetiredAt.Equal(at(time.Hour+50*time.Second)) {
			t.Fatalf("after rotating r2: %+v", got)
		}
		_, err = b.RotateRefresh(ctx, rotation("r2", "r4", at(time.Hour+100*time.Second)))
		must(t, "retry of r2 in its own window", err)
		_, err = b.RotateRefresh(ctx, rotation("r0", "r5", at(time.Hour+101*time.Second)))
		wantErr(t, "r0 after two rotations", err, storage.ErrRefreshReused)
	})
	t.Run("GrantWithoutRetirementTimeHasNoGrace", func(t *testing.T) {
		// A grant written before retirement times were recorded: its
		// previous token is reuse.
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r1")
		g.PreviousHash, g.Generation = Hash("r0"), 1
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		_, err := b.RotateRefresh(ctx, rotation("r0", "r2", at(time.Second)))
		wantErr(t, "previous token of a legacy grant", err, storage.ErrRefreshReused)
	})
	t.Run("PreviousInvalidOnceCurrentUsed", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		_, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Hour)))
		must(t, "RotateRefresh r0", err)
		_, err = b.RotateRefresh(ctx, rotation("r1", "r2", at(2*time.Hour)))
		must(t, "RotateRefresh r1", err)
		_, err = b.RotateRefresh(ctx, rotation("r0", "r9", at(3*time.Hour)))
		wantErr(t, "RotateRefresh r0 after r1 was used", err, storage.ErrRefreshReused)
		// The whole family is revoked: the current token too.
		_, err = b.RotateRefresh(ctx, rotation("r2", "r3", at(4*time.Hour)))
		wantErr(t, "RotateRefresh current after reuse", err, storage.ErrGrantRevoked)
		_, err = b.RotateRefresh(ctx, rotation("r1", "r4", at(4*time.Hour)))
		wantErr(t, "RotateRefresh previous after reuse", err, storage.ErrGrantRevoked)
		stored := getGrant(t, b, "grant-1")
		if !stored.RevokedAt.Equal(at(3*time.Hour)) || stored.RevokedReason != storage.ReasonRefreshReuse || !bytes.Equal(stored.RefreshHash, Hash("r2")) {
			t.Fatalf("stored grant: %+v", stored)
		}
	})
	t.Run("UnknownTokenRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		_, err := b.RotateRefresh(ctx, rotation("nope", "r1", at(time.Hour)))
		wantErr(t, "RotateRefresh unknown", err, storage.ErrNotFound)
		same(t, "grant", getGrant(t, b, g.ID), g)
		_, err = b.GrantByRefresh(ctx, Hash("r1"))
		wantErr(t, "GrantByRefresh r1", err, storage.ErrNotFound)
	})
	t.Run("CheckErrorAbortsUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		r := rotation("r0", "r1", at(time.Hour))
		r.Check = func(storage.Grant) error { return errTest }
		_, err := b.RotateRefresh(ctx, r)
		wantErr(t, "RotateRefresh with failing Check", err, errTest)
		same(t, "grant", getGrant(t, b, g.ID), g)
		_, err = b.GrantByRefresh(ctx, Hash("r1"))
		wantErr(t, "GrantByRefresh r1", err, storage.ErrNotFound)
		// The token still rotates afterwards.
		_, err = b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Hour)))
		must(t, "RotateRefresh", err)
	})
	t.Run("CheckErrorOnStaleTokenDoesNotRevoke", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		_, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Hour)))
		must(t, "RotateRefresh r0", err)
		_, err = b.RotateRefresh(ctx, rotation("r1", "r2", at(2*time.Hour)))
		must(t, "RotateRefresh r1", err)
		before := getGrant(t, b, "grant-1")
		r := rotation("r0", "r9", at(3*time.Hour))
		r.Check = func(storage.Grant) error { return errTest } // e.g. another client
		_, err = b.RotateRefresh(ctx, r)
		wantErr(t, "RotateRefresh stale token with failing Check", err, errTest)
		same(t, "grant", getGrant(t, b, "grant-1"), before)
	})
	t.Run("RevokedGrantRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		must(t, "RevokeGrant", b.RevokeGrant(ctx, "grant-1", "logout", at(time.Minute)))
		before := getGrant(t, b, "grant-1")
		got, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(time.Hour)))
		wantErr(t, "RotateRefresh revoked", err, storage.ErrGrantRevoked)
		if got.ID != "" && got.ID != "grant-1" {
			t.Fatalf("RotateRefresh returned another grant: %+v", got)
		}
		same(t, "grant", getGrant(t, b, "grant-1"), before)
		_, err = b.GrantByRefresh(ctx, Hash("r1"))
		wantErr(t, "GrantByRefresh r1", err, storage.ErrNotFound)
	})
	t.Run("ExpiredFamilyRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		g.RefreshExpiresAt = time.Time{}
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		for _, now := range []time.Time{g.ExpiresAt, g.ExpiresAt.Add(time.Hour)} {
			_, err := b.RotateRefresh(ctx, rotation("r0", "r1", now))
			wantErr(t, "RotateRefresh at "+now.String(), err, storage.ErrNotFound)
		}
		same(t, "grant", getGrant(t, b, g.ID), g)
	})
	t.Run("ExpiredCurrentTokenRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		_, err := b.RotateRefresh(ctx, rotation("r0", "r1", g.RefreshExpiresAt))
		wantErr(t, "RotateRefresh idle-expired", err, storage.ErrNotFound)
		same(t, "grant", getGrant(t, b, g.ID), g)
		_, err = b.GrantByRefresh(ctx, Hash("r1"))
		wantErr(t, "GrantByRefresh r1", err, storage.ErrNotFound)
	})
	t.Run("NextAlreadyKnownRefusedUnchanged", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		other := newGrant("grant-2", "client-1", "user-1", "x0")
		must(t, "CreateGrant", b.CreateGrant(ctx, other))
		_, err := b.RotateRefresh(ctx, rotation("r0", "x0", at(time.Hour)))
		wantErr(t, "RotateRefresh onto a known hash", err, storage.ErrAlreadyExists)
		same(t, "grant", getGrant(t, b, g.ID), g)
		same(t, "other grant", getGrant(t, b, other.ID), other)
	})
	t.Run("RevokeGrant", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		must(t, "RevokeGrant", b.RevokeGrant(ctx, g.ID, "user_revoked", at(time.Hour)))
		want := g
		want.RevokedAt, want.RevokedReason = at(time.Hour), "user_revoked"
		same(t, "revoked grant", getGrant(t, b, g.ID), want)
		must(t, "RevokeGrant again", b.RevokeGrant(ctx, g.ID, "other", at(2*time.Hour)))
		same(t, "grant revoked twice keeps the first", getGrant(t, b, g.ID), want)
		byRefresh, err := b.GrantByRefresh(ctx, Hash("r0"))
		must(t, "GrantByRefresh of a revoked grant", err)
		same(t, "GrantByRefresh", byRefresh, want)
		wantErr(t, "RevokeGrant unknown", b.RevokeGrant(ctx, "nope", "x", at(0)), storage.ErrNotFound)
	})
	t.Run("RevokeClientAndSubjectGrants", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		grants := []storage.Grant{
			newGrant("g1", "client-a", "alice", "t1"),
			newGrant("g2", "client-a", "bob", "t2"),
			newGrant("g3", "client-b", "alice", "t3"),
			newGrant("g4", "client-b", "bob", "t4"),
			newGrant("g5", "client-ab", "alic", "t5"), // prefix neighbours must not match
		}
		for _, g := range grants {
			must(t, "CreateGrant", b.CreateGrant(ctx, g))
		}
		n, err := b.RevokeClientGrants(ctx, "client-a", "client_deleted", at(time.Hour))
		must(t, "RevokeClientGrants", err)
		if n != 2 {
			t.Fatalf("RevokeClientGrants = %d, want 2", n)
		}
		n, err = b.RevokeSubjectGrants(ctx, "alice", "password_changed", at(2*time.Hour))
		must(t, "RevokeSubjectGrants", err)
		if n != 1 { // g1 was revoked already
			t.Fatalf("RevokeSubjectGrants = %d, want 1", n)
		}
		want := map[string]struct {
			at     time.Time
			reason string
		}{
			"g1": {at(time.Hour), "client_deleted"},
			"g2": {at(time.Hour), "client_deleted"},
			"g3": {at(2 * time.Hour), "password_changed"},
		}
		for _, g := range grants {
			got := getGrant(t, b, g.ID)
			w, revoked := want[g.ID]
			switch {
			case revoked && (!got.RevokedAt.Equal(w.at) || got.RevokedReason != w.reason):
				t.Fatalf("%s: revoked at %v (%q), want %v (%q)", g.ID, got.RevokedAt, got.RevokedReason, w.at, w.reason)
			case !revoked:
				same(t, g.ID+" untouched", got, g)
			}
		}
		n, err = b.RevokeClientGrants(ctx, "client-a", "again", at(3*time.Hour))
		must(t, "RevokeClientGrants again", err)
		if n != 0 {
			t.Fatalf("RevokeClientGrants again = %d, want 0", n)
		}
		n, err = b.RevokeSubjectGrants(ctx, "nobody", "x", at(3*time.Hour))
		must(t, "RevokeSubjectGrants unknown", err)
		if n != 0 {
			t.Fatalf("RevokeSubjectGrants unknown = %d, want 0", n)
		}
	})
	t.Run("ListGrants", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g1 := newGrant("g1", "client-a", "alice", "t1")
		g2 := newGrant("g2", "client-a", "bob", "t2")
		g3 := newGrant("g3", "client-b", "alice", "t3")
		g0 := newGrant("g0", "client-a", "alice", "t0")
		g2.CreatedAt = at(-time.Hour) // oldest first
		g0.CreatedAt = at(time.Hour)
		for _, g := range []storage.Grant{g1, g2, g3, g0} {
			must(t, "CreateGrant", b.CreateGrant(ctx, g))
		}
		must(t, "RevokeGrant", b.RevokeGrant(ctx, "g1", "x", at(time.Minute)))
		g1.RevokedAt, g1.RevokedReason = at(time.Minute), "x"
		cases := []struct {
			name, client, subject string
			want                  []storage.Grant
		}{
			{"ByClient", "client-a", "", []storage.Grant{g2, g1, g0}},
			{"BySubject", "", "alice", []storage.Grant{g1, g3, g0}},
			{"ByBoth", "client-a", "alice", []storage.Grant{g1, g0}},
			{"All", "", "", []storage.Grant{g2, g1, g3, g0}},
			{"UnknownClient", "client-z", "", nil},
			{"PrefixOfClient", "client", "", nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, err := b.ListGrants(ctx, c.client, c.subject)
				must(t, "ListGrants", err)
				same(t, "ListGrants", got, c.want)
			})
		}
	})
}
