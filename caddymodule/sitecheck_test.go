package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

const checkGlobal = "{\n\tmcp_auth {\n\t\tissuer https://auth.example.com\n\t\tscopes todo:read todo:write\n\t}\n}\n"

// Requirement 33: what would break sign-in silently is refused while the
// Caddyfile is adapted (so `caddy validate` refuses it), naming the file and
// line of the directive and what to do.
func TestCaddyfileRefusesSilentBreakage(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"guard scope not offered", checkGlobal + "\nauth.example.com {\n\tmcp_auth_server\n\tmcp_protect /mcp* {\n\t\tscopes todo:raed\n\t}\n}\n",
			[]string{"Caddyfile:10:", `requires scope "todo:raed"`, "offered: todo:read todo:write", "add it to `mcp_auth { scopes … }`"}},
		{"method_scope scope typo", checkGlobal + "\nauth.example.com {\n\tmcp_auth_server\n\tmcp_protect /mcp* {\n\t\tmethod_scope tools/call:delete_todo todo:wirte\n\t}\n}\n",
			[]string{"Caddyfile:10:", "method_scope tools/call:delete_todo requires scope \"todo:wirte\""}},
		{"method_scope method typo", checkGlobal + "\nauth.example.com {\n\tmcp_auth_server\n\tmcp_protect /mcp* {\n\t\tmethod_scope tool/call:delete_todo todo:write\n\t}\n}\n",
			[]string{"Caddyfile:10:", "tool/call is not an MCP method"}},
		{"no scopes list at all", "{\n\tmcp_auth {\n\t\tissuer https://auth.example.com\n\t}\n}\n\nauth.example.com {\n\tmcp_auth_server\n\tmcp_protect /mcp* {\n\t\tscopes mcp\n\t}\n}\n",
			[]string{"Caddyfile:9:", `requires scope "mcp"`, "offered: none"}},
		{"server on another host", checkGlobal + "\nmcp.example.com {\n\tmcp_auth_server\n}\n",
			[]string{"Caddyfile:9:", "mcp_auth_server is on a site that does not serve the issuer's host auth.example.com", "`auth.example.com { … }`"}},
		{"guard without authorization server", "mcp.example.com {\n\tmcp_protect /mcp* {\n\t\tscopes mcp\n\t}\n}\n",
			[]string{"Caddyfile:2:", "no global mcp_auth block", "issuer <url>"}},
		{"server without mcp_auth", "auth.example.com {\n\tmcp_auth_server\n}\n",
			[]string{"Caddyfile:2:", "mcp_auth_server needs an authorization server"}},
		{"guard on a site of several hosts", checkGlobal + "\nauth.example.com {\n\tmcp_auth_server\n}\n\na.example.com, b.example.com {\n\tmcp_protect /mcp* {\n\t\tscopes todo:read\n\t}\n}\n",
			[]string{"Caddyfile:13:", "needs `resource <url>`", "a.example.com, b.example.com"}},
		{"external guard on several hosts", "a.example.com, b.example.com {\n\tmcp_protect /mcp* {\n\t\tissuer https://login.example.org\n\t}\n}\n",
			[]string{"Caddyfile:2:", "needs `resource <url>`"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, tc.src)
			if err == nil {
				t.Fatalf("adapted:\n%s", tc.src)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n  does not contain %q", err, w)
				}
			}
		})
	}
}

// guardResources returns the resource of every mcp_resource_guard handler
// of an adapted config.
func guardResources(t *testing.T, out []byte) []string {
	t.Helper()
	var res []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "mcp_resource_guard" {
				r, _ := x["resource"].(string)
				res = append(res, r)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	walk(v)
	return res
}

// A guard on a second host without `resource` takes the site's address
// (today it named the issuer's origin and discovery broke); on the issuer's
// site, on a catch-all address and with an explicit resource nothing is
// derived. This also pins the reflection that reads the site's addresses.
func TestGuardResourceFromSiteAddress(t *testing.T) {
	for _, tc := range []struct {
		name, site string
		want       string
	}{
		{"second host", "todo.example.com", "https://todo.example.com/mcp"},
		{"second host with port", "todo.example.com:8443", "https://todo.example.com:8443/mcp"},
		{"http address", "http://todo.example.com", "http://todo.example.com/mcp"},
		{"default https port", "https://todo.example.com:443", "https://todo.example.com/mcp"},
		{"the issuer's site", "auth.example.com", ""},
		{"catch-all", ":8080", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := adapt(t, checkGlobal+"\n"+tc.site+" {\n\tmcp_protect /mcp* {\n\t\tscopes todo:read\n\t}\n}\n")
			if err != nil {
				t.Fatal(err)
			}
			got := guardResources(t, out)
			if len(got) == 0 {
				t.Fatal("no guard in the adapted config")
			}
			for _, r := range got {
				if r != tc.want {
					t.Fatalf("resource %q, want %q", r, tc.want)
				}
			}
		})
	}
	out, err := adapt(t, checkGlobal+"\ntodo.example.com {\n\tmcp_protect /mcp* {\n\t\tresource https://todo.example.com/x\n\t}\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := guardResources(t, out); got[0] != "https://todo.example.com/x" {
		t.Fatalf("explicit resource replaced: %v", got)
	}
	// Scope implication: a required narrow scope implied by an offered broad one passes.
	if _, err := adapt(t, "{\n\tmcp_auth {\n\t\tissuer https://auth.example.com\n\t\tscopes todo:admin\n\t}\n}\n\nauth.example.com {\n\tmcp_protect /mcp* {\n\t\tscopes todo:read\n\t\tscope_implies todo:admin todo:read\n\t}\n}\n"); err != nil {
		t.Fatalf("implied scope refused: %v", err)
	}
}

// A JSON config whose guard has no authorization server gets advice that
// fits (before: "mcp_auth: issuer is required", of an app nobody configured).
func TestGuardWithoutAppAdvice(t *testing.T) {
	for _, handler := range []string{`{"handler":"mcp_resource_guard"}`, `{"handler":"mcp_auth_server"}`} {
		raw := `{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[` + handler + `]}]}}}}}`
		var cfg caddy.Config
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatal(err)
		}
		err := caddy.Validate(&cfg)
		if err == nil || !strings.Contains(err.Error(), "this config has no mcp_auth app: add the global `mcp_auth { issuer https://… }` block") || strings.Contains(err.Error(), "issuer is required") {
			t.Fatalf("%s: %v", handler, err)
		}
	}
}
