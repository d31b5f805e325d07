package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// headerTransport adds fixed headers to every request, as the guard in front
// of the server would.
type headerTransport struct {
	base    http.RoundTripper
	headers http.Header
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.headers {
		r.Header[k] = v
	}
	return t.base.RoundTrip(r)
}

var fixedNow = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

func startServer(t *testing.T, cfg config) (*app, *httptest.Server) {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return fixedNow }
	}
	a := newApp(cfg)
	srv := httptest.NewServer(a.handler())
	t.Cleanup(srv.Close)
	return a, srv
}

type clientOpts struct {
	headers  http.Header
	progress func(*mcp.ProgressNotificationParams)
}

func connect(t *testing.T, srv *httptest.Server, o clientOpts) *mcp.ClientSession {
	t.Helper()
	httpClient := &http.Client{Transport: &headerTransport{base: http.DefaultTransport, headers: o.headers}}
	var copts *mcp.ClientOptions
	if o.progress != nil {
		copts = &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			o.progress(req.Params)
		}}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "todo-test", Version: "0.0.1"}, copts)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint:             srv.URL + mcpPath,
		HTTPClient:           httpClient,
		DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// call invokes a tool and decodes its structured output into out. It
// returns the result so callers can check IsError.
func call(t *testing.T, cs *mcp.ClientSession, name string, args any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", name, err)
	}
	if !res.IsError && out != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatalf("%s: marshal structured content: %v", name, err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: decode structured content %s: %v", name, b, err)
		}
	}
	return res
}

func toolErrorText(res *mcp.CallToolResult) string {
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	return sb.String()
}

func TestListTools(t *testing.T) {
	_, srv := startServer(t, config{})
	cs := connect(t, srv, clientOpts{})
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	got := map[string]bool{}
	for _, tool := range res.Tools {
		got[tool.Name] = true
	}
	for _, want := range []string{"add_todo", "list_todos", "complete_todo", "delete_todo", "slow_count", "whoami"} {
		if !got[want] {
			t.Errorf("tools/list lacks %q (got %v)", want, got)
		}
	}
	if len(res.Tools) != 6 {
		t.Errorf("tools/list returned %d tools, want 6", len(res.Tools))
	}
}

func TestTodoLifecycle(t *testing.T) {
	_, srv := startServer(t, config{})
	cs := connect(t, srv, clientOpts{})

	var first, second todoOut
	if res := call(t, cs, "add_todo", map[string]any{"title": "  buy milk "}, &first); res.IsError {
		t.Fatalf("add_todo: tool error %q", toolErrorText(res))
	}
	want := Todo{ID: 1, Title: "buy milk", CreatedAt: fixedNow}
	if first.Todo != want {
		t.Fatalf("add_todo = %+v, want %+v", first.Todo, want)
	}
	call(t, cs, "add_todo", map[string]any{"title": "write tests"}, &second)
	if second.Todo.ID != 2 {
		t.Fatalf("second id = %d, want 2", second.Todo.ID)
	}

	var done todoOut
	if res := call(t, cs, "complete_todo", map[string]any{"id": 1}, &done); res.IsError {
		t.Fatalf("complete_todo: tool error %q", toolErrorText(res))
	}
	if !done.Todo.Done || done.Todo.ID != 1 {
		t.Fatalf("complete_todo = %+v, want id 1 done", done.Todo)
	}

	var open, all listTodosOut
	call(t, cs, "list_todos", map[string]any{}, &open)
	if len(open.Todos) != 1 || open.Todos[0].ID != 2 {
		t.Fatalf("list_todos (open) = %+v, want only id 2", open.Todos)
	}
	call(t, cs, "list_todos", map[string]any{"include_done": true}, &all)
	if len(all.Todos) != 2 || all.Todos[0].ID != 1 || !all.Todos[0].Done || all.Todos[1].ID != 2 {
		t.Fatalf("list_todos (all) = %+v, want ids 1 (done) and 2", all.Todos)
	}

	var del deleteOut
	if res := call(t, cs, "delete_todo", map[string]any{"id": 2}, &del); res.IsError {
		t.Fatalf("delete_todo: tool error %q", toolErrorText(res))
	}
	if del.Deleted != 2 {
		t.Fatalf("delete_todo = %+v, want deleted 2", del)
	}
	call(t, cs, "list_todos", map[string]any{"include_done": true}, &all)
	if len(all.Todos) != 1 || all.Todos[0].ID != 1 {
		t.Fatalf("after delete, list_todos = %+v, want only id 1", all.Todos)
	}
}

func TestToolErrors(t *testing.T) {
	_, srv := startServer(t, config{})
	cs := connect(t, srv, clientOpts{})
	call(t, cs, "add_todo", map[string]any{"title": "keep me"}, nil)

	tests := []struct {
		name    string
		tool    string
		args    map[string]any
		wantErr string
	}{
		{"empty title", "add_todo", map[string]any{"title": "   "}, "title must not be empty"},
		{"control character in title", "add_todo", map[string]any{"title": "a\x00b"}, "control characters"},
		{"title too long", "add_todo", map[string]any{"title": strings.Repeat("é", maxTitleRunes+1)}, "at most 200"},
		{"complete unknown id", "complete_todo", map[string]any{"id": 99}, "no todo with that id"},
		{"delete unknown id", "delete_todo", map[string]any{"id": 99}, "no todo with that id"},
		{"slow_count n zero", "slow_count", map[string]any{"n": 0}, "n must be between 1 and 100"},
		{"slow_count n too big", "slow_count", map[string]any{"n": 101}, "n must be between 1 and 100"},
		{"slow_count negative delay", "slow_count", map[string]any{"n": 1, "delay_ms": -1}, "delay_ms must be between"},
		{"slow_count delay too long", "slow_count", map[string]any{"n": 1, "delay_ms": 5001}, "delay_ms must be between"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, cs, tc.tool, tc.args, nil)
			if !res.IsError {
				t.Fatalf("%s(%v): want a tool error, got success %v", tc.tool, tc.args, res.StructuredContent)
			}
			if got := toolErrorText(res); !strings.Contains(got, tc.wantErr) {
				t.Fatalf("%s(%v): error %q does not mention %q", tc.tool, tc.args, got, tc.wantErr)
			}
			// No state change on refusal.
			var all listTodosOut
			call(t, cs, "list_todos", map[string]any{"include_done": true}, &all)
			if len(all.Todos) != 1 || all.Todos[0].Title != "keep me" || all.Todos[0].Done {
				t.Fatalf("state changed after refused call: %+v", all.Todos)
			}
		})
	}
}

func TestSlowCountStreamsProgress(t *testing.T) {
	_, srv := startServer(t, config{})
	const n = 5
	var (
		mu    sync.Mutex
		steps []*mcp.ProgressNotificationParams
		all   = make(chan struct{})
	)
	cs := connect(t, srv, clientOpts{progress: func(p *mcp.ProgressNotificationParams) {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, p)
		if len(steps) == n {
			close(all)
		}
	}})
	params := &mcp.CallToolParams{Name: "slow_count", Arguments: map[string]any{"n": n, "delay_ms": 1}}
	params.SetProgressToken("count-token")
	res, err := cs.CallTool(t.Context(), params)
	if err != nil {
		t.Fatalf("slow_count: %v", err)
	}
	if res.IsError {
		t.Fatalf("slow_count: tool error %q", toolErrorText(res))
	}
	if got := res.StructuredContent.(map[string]any)["count"]; got != float64(n) {
		t.Fatalf("slow_count result count = %v, want %d", got, n)
	}
	// Notifications are dispatched asynchronously on the client: wait for
	// them (the test's context bounds the wait).
	select {
	case <-all:
	case <-t.Context().Done():
		t.Fatal("test ended before all progress notifications arrived")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, p := range steps {
		if p.ProgressToken != "count-token" {
			t.Errorf("step %d: progress token %v, want count-token", i, p.ProgressToken)
		}
		if p.Progress != float64(i+1) || p.Total != n {
			t.Errorf("step %d: progress %v/%v, want %d/%d", i, p.Progress, p.Total, i+1, n)
		}
	}
}

func TestSlowCountWithoutProgressToken(t *testing.T) {
	_, srv := startServer(t, config{})
	var count atomic.Int64
	cs := connect(t, srv, clientOpts{progress: func(*mcp.ProgressNotificationParams) { count.Add(1) }})
	var out slowCountOut
	if res := call(t, cs, "slow_count", map[string]any{"n": 3, "delay_ms": 1}, &out); res.IsError {
		t.Fatalf("slow_count: tool error %q", toolErrorText(res))
	}
	if out.Count != 3 {
		t.Fatalf("count = %d, want 3", out.Count)
	}
	if n := count.Load(); n != 0 {
		t.Fatalf("got %d progress notifications without a progress token, want 0", n)
	}
}

func TestWhoamiAndIdentityHandOff(t *testing.T) {
	tests := []struct {
		name        string
		headers     http.Header
		wantSubject string
		wantIDs     map[string]string
		wantAuth    bool
	}{
		{
			name:        "no identity headers",
			headers:     http.Header{},
			wantSubject: "",
			wantIDs:     map[string]string{},
		},
		{
			name: "identity headers from the guard",
			headers: http.Header{
				"X-Mcp-Subject": {"user-123"},
				"X-Mcp-Email":   {"alice@example.com"},
				"X-Other":       {"not reported"},
			},
			wantSubject: "user-123",
			wantIDs:     map[string]string{"X-Mcp-Subject": "user-123", "X-Mcp-Email": "alice@example.com"},
		},
		{
			name:        "authorization header leaked",
			headers:     http.Header{"Authorization": {"Bearer must-not-arrive"}},
			wantSubject: "",
			wantIDs:     map[string]string{},
			wantAuth:    true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, srv := startServer(t, config{})
			cs := connect(t, srv, clientOpts{headers: tc.headers})
			var out whoamiOut
			if res := call(t, cs, "whoami", map[string]any{}, &out); res.IsError {
				t.Fatalf("whoami: tool error %q", toolErrorText(res))
			}
			if out.Subject != tc.wantSubject {
				t.Errorf("subject = %q, want %q", out.Subject, tc.wantSubject)
			}
			if len(out.IdentityHeaders) != len(tc.wantIDs) {
				t.Errorf("identity headers = %v, want %v", out.IdentityHeaders, tc.wantIDs)
			}
			for k, v := range tc.wantIDs {
				if out.IdentityHeaders[k] != v {
					t.Errorf("identity header %s = %q, want %q", k, out.IdentityHeaders[k], v)
				}
			}
			if out.AuthorizationHeaderSeen != tc.wantAuth {
				t.Errorf("authorization_header_seen = %v, want %v", out.AuthorizationHeaderSeen, tc.wantAuth)
			}
			seen := a.authSeen.Load()
			if tc.wantAuth && seen == 0 {
				t.Errorf("authorization header not counted")
			}
			if !tc.wantAuth && seen != 0 {
				t.Errorf("counted %d authorization headers, want 0", seen)
			}
			h := getHealth(t, srv)
			if h.AuthorizationHeadersSeen != seen || h.Status != "ok" {
				t.Errorf("healthz = %+v, want status ok and %d authorization headers", h, seen)
			}
		})
	}
}

func TestListsArePerSubject(t *testing.T) {
	_, srv := startServer(t, config{})
	alice := connect(t, srv, clientOpts{headers: http.Header{"X-Mcp-Subject": {"alice"}}})
	bob := connect(t, srv, clientOpts{headers: http.Header{"X-Mcp-Subject": {"bob"}}})
	call(t, alice, "add_todo", map[string]any{"title": "alice's"}, nil)

	var bobs listTodosOut
	call(t, bob, "list_todos", map[string]any{"include_done": true}, &bobs)
	if len(bobs.Todos) != 0 {
		t.Fatalf("bob sees %+v, want an empty list", bobs.Todos)
	}
	if res := call(t, bob, "delete_todo", map[string]any{"id": 1}, nil); !res.IsError {
		t.Fatalf("bob deleted alice's todo")
	}
	var alices listTodosOut
	call(t, alice, "list_todos", map[string]any{}, &alices)
	if len(alices.Todos) != 1 || alices.Todos[0].Title != "alice's" {
		t.Fatalf("alice sees %+v, want her todo", alices.Todos)
	}
}

func getHealth(t *testing.T, srv *httptest.Server) health {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + healthPath)
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz status = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("healthz content type = %q", ct)
	}
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("healthz body: %v", err)
	}
	return h
}

func TestHealthz(t *testing.T) {
	_, srv := startServer(t, config{})
	if h := getHealth(t, srv); h != (health{Status: "ok"}) {
		t.Fatalf("healthz = %+v", h)
	}
	resp, err := srv.Client().Post(srv.URL+healthPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz status = %d, want 405", resp.StatusCode)
	}
}

func TestDNSRebindingProtection(t *testing.T) {
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	tests := []struct {
		name         string
		allowAnyHost bool
		host         string
		wantStatus   int
	}{
		{"loopback host", false, "localhost", http.StatusOK},
		{"foreign host refused", false, "attacker.example", http.StatusForbidden},
		{"foreign host allowed behind a proxy", true, "mcp.example.com", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := startServer(t, config{AllowAnyHost: tc.allowAnyHost})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+mcpPath, strings.NewReader(initialize))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tc.host
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
		})
	}
}

func TestValidTitle(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"plain", "buy milk", "buy milk", nil},
		{"trimmed", "\t buy milk \n", "buy milk", nil},
		{"unicode", "café ☕", "café ☕", nil},
		{"max length", strings.Repeat("a", maxTitleRunes), strings.Repeat("a", maxTitleRunes), nil},
		{"empty", "", "", errEmptyTitle},
		{"blank", "   ", "", errEmptyTitle},
		{"too long", strings.Repeat("a", maxTitleRunes+1), "", errLongTitle},
		{"newline inside", "a\nb", "", errBadTitle},
		{"delete char", "a\x7fb", "", errBadTitle},
		{"invalid utf-8", "a\xffb", "", errBadTitle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := validTitle(tc.in)
			if err != tc.wantErr || got != tc.want {
				t.Fatalf("validTitle(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzValidTitle(f *testing.F) {
	for _, s := range []string{"buy milk", "", " ", "a\x00", "\xff", strings.Repeat("x", 300), "café"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := validTitle(in)
		if err != nil {
			if got != "" {
				t.Fatalf("validTitle(%q) returned %q with error %v", in, got, err)
			}
			return
		}
		if got == "" || !utf8.ValidString(got) || utf8.RuneCountInString(got) > maxTitleRunes {
			t.Fatalf("validTitle(%q) accepted %q", in, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("validTitle(%q) kept control character %U", in, r)
			}
		}
		if again, err := validTitle(got); err != nil || again != got {
			t.Fatalf("validTitle not idempotent on %q: %q, %v", got, again, err)
		}
	})
}

func TestRunRefusesBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"bad address", []string{"-addr", "256.0.0.1:bad"}, "todo: listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

// TestServesBothRevisions: the SDK client's default (2026-07-28, stateless,
// no initialize) and a client pinned to 2025-11-25 (stateful session) both
// get a working server; a raw 2026-07-28 tools/call is answered, not refused
// with -32022 UnsupportedProtocolVersion.
func TestServesBothRevisions(t *testing.T) {
	_, srv := startServer(t, config{})
	for _, tc := range []struct{ version, want string }{
		{"", revisionStateless},
		{revisionStateless, revisionStateless},
		{"2025-11-25", "2025-11-25"},
		{"2025-06-18", "2025-06-18"},
	} {
		t.Run("client="+tc.version, func(t *testing.T) {
			client := mcp.NewClient(&mcp.Implementation{Name: "todo-test", Version: "0.0.1"}, nil)
			cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: srv.URL + mcpPath, DisableStandaloneSSE: true},
				&mcp.ClientSessionOptions{ProtocolVersion: tc.version})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer cs.Close()
			if got := cs.InitializeResult().ProtocolVersion; got != tc.want {
				t.Fatalf("negotiated %q, want %q", got, tc.want)
			}
			if stateful := cs.ID() != ""; stateful != (tc.want != revisionStateless) {
				t.Errorf("session id %q for revision %s", cs.ID(), tc.want)
			}
			var out todoOut
			if res := call(t, cs, "add_todo", map[string]any{"title": "both " + tc.want}, &out); res.IsError {
				t.Fatalf("add_todo: %s", toolErrorText(res))
			}
			var list listTodosOut
			call(t, cs, "list_todos", map[string]any{}, &list)
			found := false
			for _, td := range list.Todos {
				found = found || td.Title == "both "+tc.want
			}
			if !found {
				t.Errorf("list_todos %v lacks the added todo", list.Todos)
			}
		})
	}

	t.Run("raw", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{},` +
			`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+mcpPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", "whoami")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), "-32022") || !strings.Contains(string(b), `"result"`) {
			t.Fatalf("2026-07-28 tools/call: %d %s", resp.StatusCode, b)
		}
		if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
			t.Errorf("stateless revision answered with a session id %q", sid)
		}
	})
}
