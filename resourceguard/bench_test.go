package resourceguard

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkCheckCached is the hot path: a token already verified.
func BenchmarkCheckCached(b *testing.B) {
	f := newFixture(b, nil)
	r := bearerReq("POST", testResource, f.token(nil))
	if _, c := f.g.Check(r); c != nil {
		b.Fatal(c)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, c := f.g.Check(r); c != nil {
			b.Fatal(c)
		}
	}
}

// BenchmarkCheckUncached verifies an ES256 token from scratch every time.
func BenchmarkCheckUncached(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.CacheSize = -1 })
	r := bearerReq("POST", testResource, f.token(nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, c := f.g.Check(r); c != nil {
			b.Fatal(c)
		}
	}
}

// BenchmarkRefuseMalformed: missing and malformed tokens are refused before
// any cryptography.
func BenchmarkRefuseMalformed(b *testing.B) {
	f := newFixture(b, nil)
	cases := map[string]string{"missing": "", "malformed": "Bearer not-a-jwt", "garbage": "Bearer a.b"}
	for name, v := range cases {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest("POST", testResource, nil)
			if v != "" {
				r.Header.Set("Authorization", v)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, c := f.g.Check(r); c == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
	if f.keys.calls.Load() != 0 {
		b.Fatal("a key was looked up for a malformed token")
	}
}

// BenchmarkWrapCached measures the whole middleware on the cached path.
func BenchmarkWrapCached(b *testing.B) {
	f := newFixture(b, nil)
	tok := f.token(nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		f.handler.ServeHTTP(w, bearerReq("POST", testResource, tok))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// benchToolsFixture is a guard with per-tool scopes (it reads every
// body, validates the MCP headers and filters tools/list) over an upstream
// that answers from a pre-rendered result; it also returns that upstream
// unguarded (BenchmarkWrapMCP's baseline).
func benchToolsFixture(b *testing.B, answer string, sse bool) (*fixture, http.Handler, http.Handler) {
	f := newFixture(b, func(c *Config) {
		c.Scopes = []string{"todo:read"}
		c.MethodScopes = map[string][]string{}
		for i := 1; i < 20; i += 4 {
			c.MethodScopes[fmt.Sprintf("tools/call:tool_%02d", i)] = []string{"todo:write"}
			c.MethodScopes[fmt.Sprintf("tools/call:tool_%02d", i+1)] = []string{"todo:admin"}
		}
	})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if sse {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n")
			_, _ = io.WriteString(w, "event: message\ndata: "+answer+"\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	})
	return f, f.g.Wrap(next), next
}

func benchListResult() string {
	// As e2e's benchmark upstream lists them: a title, a description of
	// ordinary length and a small input schema (about 250 bytes a tool).
	var tools []string
	for i := range 20 {
		tools = append(tools, fmt.Sprintf(`{"name":"tool_%02d","title":"Tool %d","description":"A tool of the benchmark, with a description of ordinary length for an MCP server.","inputSchema":{"type":"object","properties":{"id":{"type":"string"},"text":{"type":"string"}},"required":["id"]}}`, i, i))
	}
	return `{"jsonrpc":"2.0","id":1,"result":{"tools":[` + strings.Join(tools, ",") + `]}}`
}

// BenchmarkWrapMCP measures the whole middleware on what MCP 2026-07-28
// clients send: a tools/call or tools/list POST with Mcp-Method/Mcp-Name
// (validated against the body), answered as JSON or SSE, with 1 or 1,000
// distinct (cached) tokens. The -unguarded variants send the same requests
// to the upstream handler alone: the guard's cost is the difference.
func BenchmarkWrapMCP(b *testing.B) {
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_00","arguments":{"id":"42","text":"buy milk"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	callResult := `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"added todo 42"}],"isError":false}}`
	for _, wl := range []struct {
		name, body, method, tool, answer string
		sse                              bool
	}{
		{"call-json", call, "tools/call", "tool_00", callResult, false},
		{"call-sse", call, "tools/call", "tool_00", callResult, true},
		{"list-json", list, "tools/list", "", benchListResult(), false},
		{"list-sse", list, "tools/list", "", benchListResult(), true},
	} {
		// ntok 0 is the baseline: the same requests to the upstream handler
		// without the guard, so the guard's cost is the difference.
		for _, ntok := range []int{0, 1, 1000} {
			name := fmt.Sprintf("%s-%d", wl.name, ntok)
			if ntok == 0 {
				name = wl.name + "-unguarded"
			}
			b.Run(name, func(b *testing.B) {
				f, h, next := benchToolsFixture(b, wl.answer, wl.sse)
				if ntok == 0 {
					h = next
				}
				ntok := max(ntok, 1)
				toks := make([]string, ntok)
				for i := range toks {
					toks[i] = f.token(func(_, c map[string]any) { c["jti"] = fmt.Sprintf("tok-%d", i); c["scope"] = "todo:read" })
				}
				req := func(i int) *http.Request {
					r := httptest.NewRequest("POST", testResource, strings.NewReader(wl.body))
					r.Header.Set("Authorization", "Bearer "+toks[i%ntok])
					r.Header.Set("Content-Type", "application/json")
					r.Header.Set("MCP-Protocol-Version", "2026-07-28")
					r.Header.Set("Mcp-Method", wl.method)
					if wl.tool != "" {
						r.Header.Set("Mcp-Name", wl.tool)
					}
					return r
				}
				for i := range ntok { // warm the cache
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req(i))
					if w.Code != 200 {
						b.Fatal(w.Code, w.Body)
					}
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					serveBench(h, req(i))
					i++
				}
				b.Logf("serveBench calls: %d", benchServed.Load())
			})
		}
	}
}

// benchServed counts serveBench's calls in this process.
var benchServed atomic.Int64

// serveBench serves one request of BenchmarkWrapMCP. It is not inlined:
// scripts/guard-icount.sh counts the instructions executed inside it
// (valgrind's callgrind), a figure that does not move with the machine's
// load the way timings do, and that leaves out building the request.
//
//go:noinline
func serveBench(h http.Handler, r *http.Request) {
	h.ServeHTTP(httptest.NewRecorder(), r)
	benchServed.Add(1)
}

// BenchmarkParseJSONRPC is the request parser alone on a tools/call body.
func BenchmarkParseJSONRPC(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_00","arguments":{"id":"42","text":"buy milk"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseJSONRPC(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterToolsList is the tools/list rewriter alone (20 tools, half
// removed).
func BenchmarkFilterToolsList(b *testing.B) {
	msg := []byte(benchListResult())
	f := &toolFilter{keep: func(n string) bool { return n[len(n)-1]%2 == 0 }}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, _, err := f.filterBody(msg); err != nil {
			b.Fatal(err)
		}
	}
}
