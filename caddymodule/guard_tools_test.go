package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// TestGuardToolOptions: the Caddyfile options of the tool-aware guard and
// their checks.
func TestGuardToolOptions(t *testing.T) {
	var g Guard
	d := caddyfile.NewTestDispenser(`mcp_protect {
		tool_limit delete_todo 10/1m 2
		tool_limit * 5/1s
		tools_list_filter off
		max_tools_list_bytes 1MiB
		metric_tools a b
	}`)
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if len(g.ToolLimits) != 2 || g.ToolLimits[0] != (ToolLimit{Tool: "delete_todo", Calls: 10, Interval: config.Duration(60e9), Burst: 2}) ||
		g.ToolsListFilter != "off" || g.MaxToolsListBytes != 1<<20 || len(g.MetricTools) != 2 {
		t.Fatalf("%+v", g)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"tool_limit x 10", "tool_limit x 0/1m", "tool_limit x 10/0s", "tool_limit x 1/1m 0", "tools_list_filter maybe",
		"max_tools_list_bytes 0", "metric_tools"} {
		var g Guard
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_protect {\n" + bad + "\n}")); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := (&Guard{Guard: config.Guard{ToolsListFilter: "x"}}).Validate(); err == nil {
		t.Error("bad tools_list_filter validated")
	}
	if err := (&Guard{Guard: config.Guard{ToolLimits: []ToolLimit{{Tool: "x"}}}}).Validate(); err == nil {
		t.Error("tool limit without calls validated")
	}
}

// TestGuardRefuseKeepsJSONRPCBody: with handle_errors routes, ordinary
// refusals go to the operator's error routes, but a -32020 HeaderMismatch
// keeps its JSON-RPC body (clients read it).
func TestGuardRefuseKeepsJSONRPCBody(t *testing.T) {
	rg, err := resourceguard.New(resourceguard.Config{Resource: "https://mcp.example.com/mcp", Issuer: "https://login.example.org", Keys: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{guard: rg}
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{}}}}
	req := func() *http.Request {
		r := httptest.NewRequest("POST", "https://mcp.example.com/mcp", nil)
		return r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv))
	}
	w := httptest.NewRecorder()
	if err := g.refuse(w, req(), &resourceguard.Challenge{Status: 403, Error: resourceguard.ErrorInsufficientScope}); err == nil {
		t.Fatal("ordinary refusal not handed to handle_errors")
	}
	w = httptest.NewRecorder()
	ch := &resourceguard.Challenge{Status: 400, Description: "header mismatch: x", RPCCode: resourceguard.RPCHeaderMismatch, RPCID: []byte("3")}
	if err := g.refuse(w, req(), ch); err != nil {
		t.Fatal(err)
	}
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"code":-32020`) || !strings.Contains(w.Body.String(), `"id":3`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
