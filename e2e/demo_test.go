package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

// demo is the repository's Caddyfile.example run as scripts/demo.sh runs
// it, on free ports, in front of the sample server.
type demo struct {
	caddy *proc
	base  string
	admin string
	dir   string
}

func startDemo(t *testing.T) *demo {
	t.Helper()
	binaries(t)
	todoAddr, _ := startTodo(t)
	d := &demo{dir: t.TempDir()}
	port := freePort(t)
	d.base = fmt.Sprintf("http://localhost:%d", port)
	d.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, upstreamPort, _ := net.SplitHostPort(todoAddr)
	env := []string{
		"HOME=" + d.dir,
		"XDG_DATA_HOME=" + filepath.Join(d.dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(d.dir, "config"),
		fmt.Sprintf("MCPAUTH_DEMO_PORT=%d", port),
		"MCPAUTH_DEMO_UPSTREAM_PORT=" + upstreamPort,
		"MCPAUTH_DEMO_DIR=" + d.dir,
		"MCPAUTH_DEMO_ADMIN=" + d.admin,
		"MCPAUTH_DEMO_PASSWORD=demo-password",
	}
	d.caddy = startProc(t, "caddy (demo)", env, caddyBin, "run", "--config", filepath.Join(repoRoot, "Caddyfile.example"), "--adapter", "caddyfile")
	waitHTTP(t, http.DefaultClient, d.base+"/.well-known/oauth-authorization-server")
	return d
}

// token registers a DCR client and signs in as the demo user asking for
// scopes; it returns the access token and the scopes granted.
func (d *demo) token(t *testing.T, scopes ...string) (string, string) {
	t.Helper()
	reg := `{"client_name":"demo test","redirect_uris":["http://127.0.0.1:5555/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code"],"response_types":["code"]}`
	resp, err := http.Post(d.base+"/register", "application/json", strings.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var client struct {
		ClientID string `json:"client_id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &client) != nil || client.ClientID == "" {
		t.Fatalf("DCR: %d %s", resp.StatusCode, b)
	}
	conf := &oauth2.Config{
		ClientID: client.ClientID, RedirectURL: "http://127.0.0.1:5555/callback", Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: d.base + "/authorize", TokenURL: d.base + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("demo-state-1234567890", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", d.base+"/mcp"))
	br := newBrowser(t, http.DefaultClient, "http://127.0.0.1:5555/")
	q := br.authorize(t, authURL, "demo@example.com", "demo-password").Query
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", d.base+"/mcp"))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	scope, _ := tok.Extra("scope").(string)
	return tok.AccessToken, scope
}

// rawCall posts one tools/call with the token and returns status and the
// WWW-Authenticate challenge.
func (d *demo) rawCall(t *testing.T, token, tool, args string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, tool, args)
	req, _ := http.NewRequest(http.MethodPost, d.base+"/mcp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func (d *demo) session(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-demo", Version: "1.0.0"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.base + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestDemoEnforcesWriteScope: the demo's Caddyfile (Caddyfile.example, as
// scripts/demo.sh runs it) refuses the write tools to a todo:read token
// with 403 insufficient_scope naming todo:write, before the sample server
// sees the call, and serves the read tools; a todo:write token may write.
func TestDemoEnforcesWriteScope(t *testing.T) {
	d := startDemo(t)
	readTok, scope := d.token(t, "todo:read")
	if strings.Contains(scope, "todo:write") {
		t.Fatalf("asked for todo:read, granted %q", scope)
	}
	for _, tc := range []struct{ tool, args string }{
		{"add_todo", `{"title":"sneaky"}`},
		{"complete_todo", `{"id":"1"}`},
		{"delete_todo", `{"id":"1"}`},
	} {
		status, chal := d.rawCall(t, readTok, tc.tool, tc.args)
		if status != http.StatusForbidden || !strings.Contains(chal, `error="insufficient_scope"`) || !strings.Contains(chal, `scope="todo:read todo:write"`) {
			t.Fatalf("%s with a todo:read token: %d %q, want 403 insufficient_scope with todo:write", tc.tool, status, chal)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := d.session(t, readTok)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_todos", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("list_todos with a todo:read token: %v", err)
	}
	if got := toolJSON(t, res); strings.Contains(got, "sneaky") {
		t.Fatalf("the refused add_todo reached the sample server: %s", got)
	}

	writeTok, scope := d.token(t, "todo:read", "todo:write")
	if !strings.Contains(scope, "todo:write") {
		t.Fatalf("asked for todo:write, granted %q", scope)
	}
	ws := d.session(t, writeTok)
	res, err = ws.CallTool(ctx, &mcp.CallToolParams{Name: "add_todo", Arguments: map[string]any{"title": "allowed"}})
	if err != nil {
		t.Fatalf("add_todo with todo:write: %v", err)
	}
	if got := toolJSON(t, res); !strings.Contains(got, "allowed") {
		t.Fatalf("add_todo answered %s", got)
	}
}

// runDemoCheck runs `scripts/demo.sh --check-ports` with env.
func runDemoCheck(t *testing.T, env ...string) (string, error) {
	t.Helper()
	wd, _ := os.Getwd()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(filepath.Dir(wd), "scripts", "demo.sh"), "--check-ports")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDemoRefusesBusyPorts: a second demo (anything listening on the
// demo's HTTP port, the sample server's port or the admin address) makes
// scripts/demo.sh exit non-zero with a message naming the port, instead of
// starting a second process that would share the port.
func TestDemoRefusesBusyPorts(t *testing.T) {
	free := func() string { return fmt.Sprint(freePort(t)) }
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)

	out, err := runDemoCheck(t, "MCPAUTH_DEMO_PORT="+free(), "MCPAUTH_DEMO_UPSTREAM_PORT="+free(), "MCPAUTH_DEMO_ADMIN=127.0.0.1:"+free())
	if err != nil {
		t.Fatalf("all ports free: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"http port", []string{"MCPAUTH_DEMO_PORT=" + busy, "MCPAUTH_DEMO_UPSTREAM_PORT=" + free(), "MCPAUTH_DEMO_ADMIN=127.0.0.1:" + free()}, "port " + busy + " (the demo's HTTP port) is already in use"},
		{"upstream port", []string{"MCPAUTH_DEMO_PORT=" + free(), "MCPAUTH_DEMO_UPSTREAM_PORT=" + busy, "MCPAUTH_DEMO_ADMIN=127.0.0.1:" + free()}, "port " + busy + " (the sample MCP server) is already in use"},
		{"admin address", []string{"MCPAUTH_DEMO_PORT=" + free(), "MCPAUTH_DEMO_UPSTREAM_PORT=" + free(), "MCPAUTH_DEMO_ADMIN=127.0.0.1:" + busy}, "admin address 127.0.0.1:" + busy + " is already in use"},
	} {
		out, err := runDemoCheck(t, tc.env...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s busy: err %v, output %q; want a non-zero exit and %q", tc.name, err, out, tc.want)
		}
	}
}
