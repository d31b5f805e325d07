package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// goSDKSession connects the official Go SDK client, with its own OAuth
// handler (discovery from the 401, PKCE, resource, iss check), through the
// hosted login to the guarded sample server.
func goSDKSession(t *testing.T, s *stack, reg func(*auth.AuthorizationCodeHandlerConfig), progress func(*mcp.ProgressNotificationParams)) (*mcp.ClientSession, *[]string) {
	t.Helper()
	var pages []string
	cfg := &auth.AuthorizationCodeHandlerConfig{
		RedirectURL:         cliRedirect,
		RequestRefreshToken: true,
		Client:              s.Client,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
			res := b.authorize(t, args.URL, aliceEmail, alicePassword)
			pages = append(pages, res.Pages...)
			return &auth.AuthorizationResult{Code: res.Query.Get("code"), State: res.Query.Get("state"), Iss: res.Query.Get("iss")}, nil
		},
	}
	if reg != nil {
		reg(cfg)
	} else {
		cfg.PreregisteredClient = &oauthex.ClientCredentials{ClientID: cliClientID}
	}
	h, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := &mcp.ClientOptions{}
	if progress != nil {
		opts.ProgressNotificationHandler = func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			progress(req.Params)
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-go-sdk", Version: "1.0.0"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.MCPURL, HTTPClient: s.Client, OAuthHandler: h}, nil)
	if err != nil {
		t.Fatalf("Go SDK connect through OAuth: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, &pages
}

// TestGoSDKThroughGuard: an unmodified MCP server behind mcp_protect is
// discovered, challenged and reached by the Go SDK client with a token from
// our authorization server; the upstream sees identity headers, never the
// token; a long progress stream passes through unbuffered.
func TestGoSDKThroughGuard(t *testing.T) {
	s := startStack(t, stackOpts{})

	// Discovery: the 401 names the protected resource metadata.
	resp, err := s.Client.Post(s.MCPURL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+s.Issuer+`/.well-known/oauth-protected-resource/mcp"`) {
		t.Fatalf("challenge: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, err = s.Client.Get(s.Issuer + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	var prm map[string]any
	json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if prm["resource"] != s.MCPURL {
		t.Fatalf("PRM resource = %v, want %s", prm["resource"], s.MCPURL)
	}

	var mu sync.Mutex
	var steps []time.Time
	cs, _ := goSDKSession(t, s, nil, func(p *mcp.ProgressNotificationParams) {
		mu.Lock()
		steps = append(steps, time.Now())
		mu.Unlock()
	})
	ctx := context.Background()

	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) == 0 {
		t.Fatalf("tools/list: %v %v", err, tools)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add_todo", Arguments: map[string]any{"title": "ship caddy-mcpauth"}}); err != nil {
		t.Fatalf("add_todo: %v", err)
	}

	// whoami: the upstream got identity headers set by the guard and no
	// Authorization header.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	who := toolJSON(t, res)
	if strings.Contains(strings.ToLower(who), "bearer ") {
		t.Fatalf("upstream saw a bearer token: %s", who)
	}
	if !strings.Contains(who, "X-Mcp-Subject") || !strings.Contains(who, aliceEmail) {
		t.Fatalf("upstream did not get identity headers: %s", who)
	}

	// A long progress stream arrives while the tool is still running: the
	// first event is received long before the result.
	const n = 40
	params := &mcp.CallToolParams{Name: "slow_count", Arguments: map[string]any{"n": n, "delay_ms": 50}}
	params.SetProgressToken("e2e")
	start := time.Now()
	if _, err := cs.CallTool(ctx, params); err != nil {
		t.Fatalf("slow_count: %v", err)
	}
	end := time.Now()
	// Notifications are delivered to the handler asynchronously: the last
	// one may land just after CallTool returns.
	var got []time.Time
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		got = append(got[:0], steps...)
		mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			break
		}
	}
	if len(got) != n {
		t.Fatalf("got %d progress events through the guard, want %d", len(got), n)
	}
	// Unbuffered: events were spread over the call, not delivered in one
	// burst at its end (a buffering proxy would deliver all after ~2s).
	if got[0].Sub(start) > end.Sub(start)/2 {
		t.Fatalf("first progress event arrived at %v of a %v call: the stream was buffered", got[0].Sub(start), end.Sub(start))
	}

	// The sample server never saw an Authorization header.
	if s.todo != nil && strings.Contains(s.todo.logs.String(), "authorization header present") {
		t.Fatalf("upstream logged an Authorization header:\n%s", tail(s.todo.logs.String(), 2000))
	}
}

func toolJSON(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res.IsError {
		t.Fatalf("tool error: %+v", res.Content)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	if res.StructuredContent != nil {
		j, _ := json.Marshal(res.StructuredContent)
		b.Write(j)
	}
	return b.String()
}

// TestGuardRefusesThroughCaddy: wrong tokens never reach the upstream.
func TestGuardRefusesThroughCaddy(t *testing.T) {
	s := startStack(t, stackOpts{})
	good := s.login(t, s.oauthConfig("todo:read")).AccessToken
	parts := strings.Split(good, ".")
	cases := []struct {
		name    string
		header  []string
		query   string
		status  int
		errAttr string
	}{
		{"no token", nil, "", 401, ""},
		{"garbage", []string{"Bearer abc"}, "", 401, "invalid_token"},
		{"alg none", []string{"Bearer " + noneToken(t, parts[1])}, "", 401, "invalid_token"},
		{"tampered payload", []string{"Bearer " + parts[0] + "." + tamper(parts[1]) + "." + parts[2]}, "", 401, "invalid_token"},
		{"token in query", nil, "access_token=" + good, 401, "invalid_request"},
		{"two Authorization headers", []string{"Bearer " + good, "Bearer " + good}, "", 400, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := s.MCPURL
			if c.query != "" {
				u += "?" + c.query
			}
			req, _ := http.NewRequest("POST", u, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for _, h := range c.header {
				req.Header.Add("Authorization", h)
			}
			resp, err := s.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ch := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, c.status, ch)
			}
			if c.errAttr == "" && strings.Contains(ch, "error=") {
				t.Errorf("challenge without token carries an error: %s", ch)
			}
			if c.errAttr != "" && !strings.Contains(ch, `error="`+c.errAttr+`"`) {
				t.Errorf("challenge %q lacks error=%q", ch, c.errAttr)
			}
			if !strings.Contains(ch, "resource_metadata=") {
				t.Errorf("challenge %q lacks resource_metadata", ch)
			}
		})
	}
}

func noneToken(t *testing.T, payload string) string {
	return "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + payload + "."
}

func tamper(seg string) string {
	b, _ := decodeSeg(seg)
	s := strings.Replace(string(b), `"sub":"`, `"sub":"x`, 1)
	return encodeSeg([]byte(s))
}

// TestGuardWithHandleErrors: on a site with handle_errors routes, a refusal
// is returned as a Caddy error (the operator's route renders the body) and
// the challenge header is still there.
func TestGuardWithHandleErrors(t *testing.T) {
	port := freePort(t)
	startStackWith(t, stackOpts{}, func(st *stack) string {
		return fmt.Sprintf(`
http://127.0.0.1:%d {
	mcp_protect /* {
		resource %s
	}
	respond "upstream"
	handle_errors {
		respond "custom error page {err.status_code}"
	}
}
`, port, st.MCPURL)
	})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/anything", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || string(body) != "custom error page 401" {
		t.Fatalf("got %d %q, want 401 from the handle_errors route", resp.StatusCode, body)
	}
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`) {
		t.Fatalf("challenge header missing: %q", resp.Header.Get("WWW-Authenticate"))
	}
}
