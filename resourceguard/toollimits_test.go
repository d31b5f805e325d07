package resourceguard

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

// TestToolLimits: tools/call is limited per (subject, tool); another tool,
// another subject and other methods keep their own budgets; a refusal is a
// 429 with Retry-After that never reaches the upstream.
func TestToolLimits(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.ToolLimits = []ToolLimit{{Tool: "delete_todo", Rate: 1.0 / 60, Burst: 2}, {Tool: "*", Rate: 1.0 / 60, Burst: 3}}
	})
	call := func(sub, tool string) int {
		tok := f.token(func(_, cl map[string]any) { cl["sub"] = sub })
		w := httptest.NewRecorder()
		f.handler.ServeHTTP(w, rpcPost(tok, fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q}}`, tool)))
		if w.Code == 429 && w.Header().Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		return w.Code
	}
	for i := range 2 {
		if c := call("alice", "delete_todo"); c != 200 {
			t.Fatalf("call %d: %d", i, c)
		}
	}
	before := f.reached.Load()
	if c := call("alice", "delete_todo"); c != 429 {
		t.Fatalf("third call: %d", c)
	}
	if f.reached.Load() != before {
		t.Fatal("a limited call reached the upstream")
	}
	if c := call("bob", "delete_todo"); c != 200 {
		t.Fatalf("another subject: %d", c)
	}
	for i := range 3 {
		if c := call("alice", "add_todo"); c != 200 {
			t.Fatalf("other tool, call %d: %d", i, c)
		}
	}
	if c := call("alice", "add_todo"); c != 429 {
		t.Fatalf("default limit: %d", c)
	}
	if c := call("alice", "list_todos"); c != 200 {
		t.Fatalf("default limit is per tool: %d", c)
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, rpcPost(f.token(func(_, cl map[string]any) { cl["sub"] = "alice" }), listReq))
	if w.Code != 200 {
		t.Fatalf("tools/list limited: %d", w.Code)
	}
	f.clock.Advance(time.Minute)
	if c := call("alice", "delete_todo"); c != 200 {
		t.Fatalf("after a minute: %d", c)
	}
	if _, err := New(Config{Resource: testResource, Issuer: testIssuer, Keys: f.keys, ToolLimits: []ToolLimit{{Tool: "x", Rate: 0}}}); err == nil {
		t.Fatal("zero rate accepted")
	}
	if _, err := New(Config{Resource: testResource, Issuer: testIssuer, Keys: f.keys, ToolLimits: []ToolLimit{{Tool: "x", Rate: 1}, {Tool: "x", Rate: 2}}}); err == nil {
		t.Fatal("duplicate limit accepted")
	}
}

// TestToolLabel: the label set is closed (the configured tools), and
// the calls the guard read are in the Decision, refused ones included.
func TestToolLabel(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.MethodScopes = map[string][]string{"tools/call:delete_todo": {"todo:admin"}}
		c.ToolLimits = []ToolLimit{{Tool: "add_todo", Rate: 10}, {Tool: "*", Rate: 10}}
		c.MetricTools = []string{"list_todos"}
	})
	for tool, want := range map[string]string{"delete_todo": "delete_todo", "add_todo": "add_todo", "list_todos": "list_todos",
		"made_up": OtherTool, "*": OtherTool, "": OtherTool} {
		if got := f.g.ToolLabel(tool); got != want {
			t.Errorf("ToolLabel(%q) = %q, want %q", tool, got, want)
		}
	}
	d, c := f.g.Authorize(rpcPost(f.token(nil), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo"}}`))
	if c == nil || c.Status != 403 || d == nil || len(d.Calls) != 1 || d.Calls[0].Name != "delete_todo" || d.Principal != nil {
		t.Fatalf("%+v %+v", d, c)
	}
	if _, err := New(Config{Resource: testResource, Issuer: testIssuer, Keys: f.keys, MetricTools: []string{OtherTool}}); err == nil {
		t.Fatal(`"other" accepted as a tool label`)
	}
}
