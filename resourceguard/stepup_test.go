package resourceguard

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func stepUpFixture(t *testing.T, su StepUpConfig) *fixture {
	return newFixture(t, func(c *Config) {
		c.Scopes = []string{"todo:read"}
		c.MethodScopes = map[string][]string{
			"tools/call:list_todos":  {"todo:read"},
			"tools/call:add_todo":    {"todo:write"},
			"tools/call:delete_todo": {"todo:write"},
		}
		c.StepUp = su
	})
}

func toolCall(id, name string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, id, name)
}

func (f *fixture) post(tok, body string) (*http.Request, *testResponse) {
	r := httptest.NewRequest(http.MethodPost, testResource, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("Content-Type", "application/json")
	w := f.do(r)
	return r, &testResponse{status: w.Code, header: w.Header(), body: w.Body.String()}
}

type testResponse struct {
	status int
	header http.Header
	body   string
}

// TestStepUpToolError: with StepUp.ToolError a tools/call lacking a scope
// is answered 200 with a JSON-RPC tool error naming the tool and linking to
// the step-up page for every scope needed plus the token's; it never reaches
// the upstream. Other requests, batches and notifications keep the 403.
func TestStepUpToolError(t *testing.T) {
	var gotScopes []string
	f := stepUpFixture(t, StepUpConfig{ToolError: true, URL: func(p *Principal, scopes []string) string {
		gotScopes = scopes
		return "https://auth.example/consent/step-up?grant=" + p.GrantID + "&scope=" + strings.Join(scopes, "+")
	}})
	tok := f.token(func(_, c map[string]any) { c["scope"] = "todo:read" })

	_, res := f.post(tok, toolCall(`"req-7"`, "add_todo"))
	if res.status != http.StatusOK || res.header.Get("WWW-Authenticate") != "" || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		t.Fatalf("tool error: %d %v %s", res.status, res.header, res.body)
	}
	var msg struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  struct {
			Content []struct{ Type, Text string } `json:"content"`
			IsError bool                          `json:"isError"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(res.body), &msg); err != nil {
		t.Fatalf("body %s: %v", res.body, err)
	}
	if msg.JSONRPC != "2.0" || string(msg.ID) != `"req-7"` || !msg.Result.IsError || len(msg.Result.Content) != 1 || msg.Result.Content[0].Type != "text" {
		t.Fatalf("tool error message: %s", res.body)
	}
	text := msg.Result.Content[0].Text
	for _, want := range []string{`"add_todo"`, "todo:write", "https://auth.example/consent/step-up?grant=grant-1&scope=todo:read+todo:write"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q: %s", want, text)
		}
	}
	if !slices.Equal(gotScopes, []string{"todo:read", "todo:write"}) {
		t.Errorf("step-up URL scopes = %v", gotScopes)
	}
	if f.reached.Load() != 0 {
		t.Fatal("the refused call reached the upstream")
	}

	// A numeric id is echoed as is.
	if _, res := f.post(tok, toolCall("42", "delete_todo")); res.status != 200 || !strings.Contains(res.body, `"id":42`) {
		t.Fatalf("numeric id: %d %s", res.status, res.body)
	}
	// Batches, notifications (no id) and non-tool methods keep the 403.
	for name, body := range map[string]string{
		"batch":        "[" + toolCall("1", "add_todo") + "]",
		"notification": `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"add_todo"}}`,
	} {
		if _, res := f.post(tok, body); res.status != http.StatusForbidden || !strings.Contains(res.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Errorf("%s: %d %s", name, res.status, res.body)
		}
	}
	// Allowed calls pass.
	if _, res := f.post(tok, toolCall("1", "list_todos")); res.status != 200 || res.body != "upstream ok" {
		t.Fatalf("allowed call: %d %s", res.status, res.body)
	}
}

// TestStepUpDefaultIs403: without ToolError the standard challenge, with
// every needed scope in one challenge.
func TestStepUpDefaultIs403(t *testing.T) {
	f := stepUpFixture(t, StepUpConfig{})
	tok := f.token(func(_, c map[string]any) { c["scope"] = "todo:read" })
	_, res := f.post(tok, toolCall("1", "add_todo"))
	_, params, err := parseChallenge(res.header.Get("WWW-Authenticate"))
	if res.status != http.StatusForbidden || err != nil || params["error"] != "insufficient_scope" || params["scope"] != "todo:read todo:write" {
		t.Fatalf("403: %d %q %v", res.status, res.header.Get("WWW-Authenticate"), err)
	}
}

// TestToolSnapshot: with StepUp.ToolSnapshot a mapped tool outside the
// token's mcp_tools claim is refused with the step-up answer even though the
// scope is granted (the tool appeared after consent); tools in the snapshot
// and unmapped tools pass; a token without the claim may call no mapped tool.
func TestToolSnapshot(t *testing.T) {
	f := stepUpFixture(t, StepUpConfig{ToolSnapshot: true})
	tok := f.token(func(_, c map[string]any) {
		c["scope"] = "todo:read todo:write"
		c[ClaimTools] = []string{"add_todo", "list_todos"}
	})
	if _, res := f.post(tok, toolCall("1", "add_todo")); res.status != 200 {
		t.Fatalf("consented tool: %d %s", res.status, res.body)
	}
	if _, res := f.post(tok, toolCall("1", "whoami")); res.status != 200 {
		t.Fatalf("unmapped tool: %d %s", res.status, res.body)
	}
	before := f.reached.Load()
	_, res := f.post(tok, toolCall("1", "delete_todo"))
	_, params, _ := parseChallenge(res.header.Get("WWW-Authenticate"))
	if res.status != http.StatusForbidden || params["error"] != "insufficient_scope" || params["scope"] != "todo:read todo:write" ||
		!strings.Contains(params["error_description"], "delete_todo") {
		t.Fatalf("new tool: %d %q %s", res.status, res.header.Get("WWW-Authenticate"), res.body)
	}
	if _, res := f.post(tok, "["+toolCall("1", "list_todos")+","+toolCall("2", "delete_todo")+"]"); res.status != http.StatusForbidden {
		t.Fatalf("batch with a new tool: %d %s", res.status, res.body)
	}
	// A compressed body is judged on what it decompresses to (the guard's one
	// parse), never let through because a second reader could not read it.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(toolCall("1", "delete_todo")))
	zw.Close()
	r := httptest.NewRequest(http.MethodPost, testResource, bytes.NewReader(gz.Bytes()))
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Encoding", "gzip")
	if w := f.do(r); w.Code != http.StatusForbidden {
		t.Fatalf("gzip-compressed call of a new tool: %d %s", w.Code, w.Body.String())
	}
	if f.reached.Load() != before {
		t.Fatal("a tool outside the snapshot reached the upstream")
	}
	noClaim := f.token(func(_, c map[string]any) { c["scope"] = "todo:read todo:write" })
	if _, res := f.post(noClaim, toolCall("1", "list_todos")); res.status != http.StatusForbidden {
		t.Fatalf("token without a snapshot: %d %s", res.status, res.body)
	}
	// Other methods are not snapshot-checked.
	if _, res := f.post(noClaim, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); res.status != 200 {
		t.Fatalf("tools/list: %d %s", res.status, res.body)
	}

	// With ToolError the new tool gets the tool error naming it.
	f2 := stepUpFixture(t, StepUpConfig{ToolSnapshot: true, ToolError: true, URL: func(p *Principal, s []string) string { return "https://auth.example/su" }})
	tok2 := f2.token(func(_, c map[string]any) {
		c["scope"] = "todo:read todo:write"
		c[ClaimTools] = []string{"list_todos"}
	})
	if _, res := f2.post(tok2, toolCall("3", "add_todo")); res.status != 200 || !strings.Contains(res.body, "new since you approved") ||
		!strings.Contains(res.body, `\"add_todo\"`) || !strings.Contains(res.body, "https://auth.example/su") {
		t.Fatalf("new tool as tool error: %d %s", res.status, res.body)
	}
}

func TestStepUpConfigChecks(t *testing.T) {
	_, err := New(Config{Resource: testResource, Issuer: testIssuer, Keys: newMemKeys(t), StepUp: StepUpConfig{ToolSnapshot: true}})
	if err == nil {
		t.Fatal("tool snapshot without a tool map accepted")
	}
	f := stepUpFixture(t, StepUpConfig{})
	tools, _ := f.g.MappedTools()
	if !slices.Equal(tools["add_todo"], []string{"todo:read", "todo:write"}) || !slices.Equal(tools["list_todos"], []string{"todo:read"}) || len(tools) != 3 {
		t.Fatalf("MappedTools = %v", tools)
	}
}
