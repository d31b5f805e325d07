package storagetest

import (
	"slices"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// testWiden: WidenGrant adds a step-up's scopes and tools to a live grant
// and nothing else; the tool snapshot round-trips on grants, codes and
// consents.
func (s *suite) testWiden(t *testing.T) {
	t.Run("AddsScopesAndTools", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		g := newGrant("grant-1", "client-1", "user-1", "r0")
		g.Tools = []string{"list_todos"}
		must(t, "CreateGrant", b.CreateGrant(ctx, g))
		same(t, "grant with tools", getGrant(t, b, g.ID), g)
		got, err := b.WidenGrant(ctx, g.ID, []string{"mcp:write", "mcp:read"}, []string{"delete_todo", "add_todo", "list_todos"}, at(time.Hour))
		must(t, "WidenGrant", err)
		want := g
		want.Scopes = []string{"mcp:read", "offline_access", "mcp:write"}
		want.Tools = []string{"add_todo", "delete_todo", "list_todos"}
		same(t, "widened grant", got, want)
		same(t, "stored grant", getGrant(t, b, g.ID), want)
		// The refresh token is the same and still rotates.
		if _, err := b.RotateRefresh(ctx, rotation("r0", "r1", at(2*time.Hour))); err != nil {
			t.Fatalf("rotate after widen: %v", err)
		}
		if got := getGrant(t, b, g.ID); !slices.Equal(got.Scopes, want.Scopes) || !slices.Equal(got.Tools, want.Tools) {
			t.Fatalf("rotation lost the widening: %+v", got)
		}
	})
	t.Run("RefusesRevokedExpiredUnknown", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-1", "client-1", "user-1", "r0")))
		must(t, "CreateGrant", b.CreateGrant(ctx, newGrant("grant-2", "client-1", "user-1", "r9")))
		must(t, "RevokeGrant", b.RevokeGrant(ctx, "grant-2", "test", at(time.Minute)))
		_, err := b.WidenGrant(ctx, "grant-2", []string{"mcp:write"}, nil, at(time.Hour))
		wantErr(t, "WidenGrant revoked", err, storage.ErrGrantRevoked)
		if got := getGrant(t, b, "grant-2"); slices.Contains(got.Scopes, "mcp:write") {
			t.Fatalf("revoked grant widened: %+v", got)
		}
		_, err = b.WidenGrant(ctx, "grant-1", []string{"mcp:write"}, nil, at(31*24*time.Hour))
		wantErr(t, "WidenGrant expired", err, storage.ErrNotFound)
		if got := getGrant(t, b, "grant-1"); slices.Contains(got.Scopes, "mcp:write") {
			t.Fatalf("expired grant widened: %+v", got)
		}
		_, err = b.WidenGrant(ctx, "nope", []string{"mcp:write"}, nil, at(time.Hour))
		wantErr(t, "WidenGrant unknown", err, storage.ErrNotFound)
	})
	t.Run("SnapshotRoundTrips", func(t *testing.T) {
		b, ctx := s.backend(t), t.Context()
		c := storage.Consent{Subject: "user-1", ClientID: "client-1", Scopes: []string{"mcp:read"}, Resource: "https://mcp.example/mcp",
			Tools: []string{"a", "b"}, Fingerprint: "fp", GrantedAt: at(0), ExpiresAt: at(time.Hour)}
		must(t, "PutConsent", b.PutConsent(ctx, c))
		got, err := b.GetConsent(ctx, "user-1", "client-1")
		must(t, "GetConsent", err)
		same(t, "consent with tools", got, c)
		ac := storage.AuthCode{Hash: Hash("code"), ClientID: "client-1", RedirectURI: "https://app.example/cb", CodeChallenge: "x",
			CodeChallengeMethod: "S256", Subject: "user-1", Scopes: []string{"mcp:read"}, Resource: "https://mcp.example/mcp",
			Tools: []string{"list_todos"}, GrantID: "grant-9", CreatedAt: at(0), ExpiresAt: at(time.Minute)}
		must(t, "SaveCode", b.SaveCode(ctx, ac))
		var seen []string
		_, err = b.RedeemCode(ctx, ac.Hash, at(time.Second), func(c storage.AuthCode) (*storage.Grant, error) {
			seen = c.Tools
			g := newGrant(c.GrantID, c.ClientID, c.Subject, "")
			g.Tools = c.Tools
			return &g, nil
		})
		must(t, "RedeemCode", err)
		if !slices.Equal(seen, ac.Tools) {
			t.Fatalf("code tools = %v, want %v", seen, ac.Tools)
		}
	})
}
