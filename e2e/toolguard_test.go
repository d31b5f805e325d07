package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// toolGuardScopes make the sample server's write tools need todo:write.
const toolGuardScopes = `
		method_scope tools/call:add_todo todo:write
		method_scope tools/call:complete_todo todo:write
		method_scope tools/call:delete_todo todo:write`

// TestToolGuardFilteredToolsList: through the built binary, the Go SDK
// client with a read-only token lists only the tools it may call (the
// sample server answers tools/list over SSE or JSON); a tools/call of a
// hidden tool is a 403 step-up naming every scope it needs.
func TestToolGuardFilteredToolsList(t *testing.T) {
	s := startStack(t, stackOpts{extraGuard: toolGuardScopes})
	cs, _ := goSDKSession(t, s, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("ListTools through the filter: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if want := []string{"list_todos", "slow_count", "whoami"}; !slices.Equal(names, want) {
		t.Fatalf("a todo:read token lists %v, want %v", names, want)
	}

	tok := s.login(t, s.oauthConfig("todo:read")).AccessToken
	st, hdr, _ := toolGuardPost(t, s, tok, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_todo","arguments":{"id":1}}}`, nil)
	if st != 403 || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="insufficient_scope"`) || !strings.Contains(hdr.Get("WWW-Authenticate"), `scope="todo:read todo:write"`) {
		t.Fatalf("hidden tool: %d %q", st, hdr.Get("WWW-Authenticate"))
	}
}

// TestToolGuardHeaderMismatch: through the built binary, Mcp-Method and
// Mcp-Name that disagree with the body are refused with 400 and JSON-RPC
// -32020 before the upstream (a recorder that counts what reaches it);
// matching headers, and old clients without them, get through.
func TestToolGuardHeaderMismatch(t *testing.T) {
	rec := startRecorder(t)
	s := startStack(t, stackOpts{extraGuard: toolGuardScopes, upstream: rec.addr()})
	tok := s.login(t, s.oauthConfig("todo:read", "todo:write")).AccessToken
	call := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_todo","arguments":{"id":1}}}`
	modern := func(method, name string) map[string]string {
		h := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
		if name != "" {
			h["Mcp-Name"] = name
		}
		return h
	}
	for _, c := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"name mismatch", modern("tools/call", "list_todos"), 400},
		{"method mismatch", modern("tools/list", ""), 400},
		{"missing name", modern("tools/call", ""), 400},
		{"encoded name mismatch", modern("tools/call", "=?base64?bGlzdF90b2Rvcw==?="), 400},
		{"match", modern("tools/call", "delete_todo"), 200},
		{"encoded match", modern("tools/call", "=?base64?ZGVsZXRlX3RvZG8=?="), 200},
		{"old client without headers", map[string]string{"MCP-Protocol-Version": "2025-11-25"}, 200},
	} {
		before := len(rec.requests())
		st, _, body := toolGuardPost(t, s, tok, call, c.headers)
		if st != c.status {
			t.Fatalf("%s: %d %s", c.name, st, body)
		}
		reached := len(rec.requests()) > before
		if reached != (c.status == 200) {
			t.Fatalf("%s: upstream reached = %v", c.name, reached)
		}
		if c.status == 400 {
			var m struct {
				ID    int `json:"id"`
				Error struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error.Code != -32020 || m.ID != 9 {
				t.Fatalf("%s: body %s (%v)", c.name, body, err)
			}
		}
	}
}

func toolGuardPost(t *testing.T, s *stack, tok, body string, headers map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.MCPURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
