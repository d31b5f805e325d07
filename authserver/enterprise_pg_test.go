package authserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mcpauth/caddy-mcpauth/internal/pgtest"
	"github.com/mcpauth/caddy-mcpauth/storage/pgstore"
)

// TestIDJAGReplayAcrossInstances: two instances of the authorization server
// (each with its own connection pool) on one PostgreSQL database: an ID-JAG
// accepted by A is a replay at B (the jti is recorded in the shared store).
func TestIDJAGReplayAcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t, "the cross-instance ID-JAG replay test", "scripts/pg-test.sh run go test -run AcrossInstances ./authserver/")
	schema := pgtest.Schema("mcpauth_idjag_")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	// The signer, keys and clients of the bbolt harness.
	ref := newEntHarness(t)
	clock := &testClock{t: time.Now().Truncate(time.Second)}
	const issuer = "https://as.example.com"
	instance := func() *Server {
		st, err := pgstore.Open(t.Context(), pgstore.Config{DSN: dsn, Schema: schema, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		srv, err := New(context.Background(), Config{
			Issuer: issuer, Store: st, Browser: &testBrowser{authTime: clock.Now()},
			Scopes: []string{"read", "write"}, Resources: ResourcePolicy{Enabled: true, Known: []string{testResource}},
			Clients: testClients(t), IssuerClient: ref.fetcher.client(), EnterpriseAccounts: ref.accounts.resolve,
			EnterpriseIdPs: []EnterpriseIdP{{Name: "acme", Issuer: entIssuer, Clients: []string{"conf"}, ScopeMap: map[string][]string{"mcp.read": {"read"}}}},
			Now:            clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	a, b := instance(), instance()
	now := clock.Now()
	jag := ref.idp.sign(t, map[string]any{"iss": entIssuer, "sub": "00u-alice", "aud": issuer, "resource": testResource, "client_id": "conf",
		"jti": testJTI(t), "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "scope": "mcp.read"}, map[string]any{"typ": IDJAGType})
	post := func(s *Server) int {
		r := httptest.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(bearerForm(jag).Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code
	}
	if c := post(a); c != http.StatusOK {
		t.Fatalf("instance A: %d", c)
	}
	if c := post(b); c != http.StatusBadRequest {
		t.Fatalf("instance B accepted the replay: %d", c)
	}
}
