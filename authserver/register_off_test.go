package authserver

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// With DCR off, /register is still answered by the server: 403
// access_denied saying why, audited as a refused registration, and nothing
// stored. It is not advertised in the metadata.
func TestRegisterWhenDCROff(t *testing.T) {
	h := newHarness(t)
	before, err := h.store.ListClients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, h.issuer+"/register", strings.NewReader(`{"client_name":"x","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`))
	if !h.srv.Handles(req) {
		t.Fatal("/register is not handled by the server with DCR off (the next handler would answer)")
	}
	w := h.post("/register", `{"client_name":"x","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`,
		func(r *http.Request) { r.Header.Set("Content-Type", "application/json") })
	if w.Code != http.StatusForbidden || oauthError(t, w) != oauth.CodeAccessDenied {
		t.Fatalf("POST /register with DCR off: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), "dynamic client registration") || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("the refusal does not say why: %s", w.Body)
	}
	after, err := h.store.ListClients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("a client was stored: %d -> %d", len(before), len(after))
	}
	if strings.Contains(string(h.srv.metaJSON), "registration_endpoint") {
		t.Fatal("registration_endpoint advertised with DCR off")
	}
}
