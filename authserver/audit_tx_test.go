package authserver

import (
	"context"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// stored lists the audit events of type typ in the store now, without
// flushing the batch writer: only what was written with the change.
func stored(t *testing.T, h *harness, typ string) []storage.AuditEvent {
	t.Helper()
	evs, err := h.store.ListAudit(context.Background(), storage.AuditQuery{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestSecurityEventsCommitWithTheChange: when /token answers, the
// token.issued (and, for a replayed refresh token, refresh.reuse) record is
// already in the store, written in the transaction of the grant (before:
// batched in memory for up to 100 ms, lost on a crash).
func TestSecurityEventsCommitWithTheChange(t *testing.T) {
	// The batch writer holds its events for an hour: what the store has
	// was written with the change.
	h := newHarness(t, func(c *Config) {
		c.Audit = audit.NewWriter(audit.Config{Store: c.Store, Logger: quietLogger(), Linger: time.Hour, BatchMax: 1 << 20})
		c.Audit.Start()
		t.Cleanup(c.Audit.Close)
	})
	code := h.code("app", appRedirect)
	tok := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
	evs := stored(t, h, audit.TokenIssued)
	if len(evs) != 1 || evs[0].Detail["grant_type"] != oauth.GrantAuthorizationCode || evs[0].Detail["grant_id"] == "" || evs[0].ClientID != "app" {
		t.Fatalf("token.issued right after the exchange: %+v", evs)
	}
	if evs[0].Detail["scope"] != tok.Scope {
		t.Fatalf("recorded scope %q, issued %q", evs[0].Detail["scope"], tok.Scope)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	h.mustToken(refreshForm("app", tok.RefreshToken))
	if evs := stored(t, h, audit.TokenIssued); len(evs) != 2 || evs[0].Detail["grant_type"] != oauth.GrantRefreshToken {
		t.Fatalf("token.issued right after the rotation: %+v", evs)
	}
	// The first token again, twice (past the grace's one retry): reuse.
	h.token(refreshForm("app", tok.RefreshToken))
	h.token(refreshForm("app", tok.RefreshToken))
	if evs := stored(t, h, audit.RefreshReuse); len(evs) != 1 || evs[0].Outcome != "family_revoked" || evs[0].Detail["grant_id"] == "" {
		t.Fatalf("refresh.reuse right after the replay: %+v", evs)
	}
	// code.issued (not a security decision) waits in the batch.
	if evs := stored(t, h, audit.CodeIssued); len(evs) != 0 {
		t.Fatalf("code.issued written before the batch: %+v", evs)
	}
}
