package resourceguard

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func gzipped(t testing.TB, s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func deflated(t testing.TB, s string) string {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func b64sentinel(s string) string {
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

// TestMCPHeaderValidation: every combination of the 2026-07-28 metadata
// headers with the body (requirement 26). A refusal never reaches the
// upstream; the policy always uses the body's values; an accepted request
// reaches the upstream with the exact bytes sent.
func TestMCPHeaderValidation(t *testing.T) {
	call := func(name string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, name)
	}
	list := `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`
	read := `{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"todo://secret"}}`
	const modern, old = "2026-07-28", "2025-11-25"
	type hdr = map[string][]string
	cases := []struct {
		name    string
		policy  bool // the guard has per-tool scopes (reads every POST body)
		version string
		headers hdr
		body    string
		enc     string // Content-Encoding to apply to body
		scope   string // token scopes (default: all)
		status  int
		rpc     int    // expected JSON-RPC error code, 0 for none
		rpcID   string // expected id of the error
	}{
		{name: "match", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), status: 200},
		{name: "match without policy", version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), status: 200},
		{name: "method mismatch", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/list"}, "Mcp-Name": {"delete_todo"}}, body: call("delete_todo"), status: 400, rpc: -32020, rpcID: "7"},
		{name: "name mismatch (header says a harmless tool)", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("delete_todo"), status: 400, rpc: -32020, rpcID: "7"},
		{name: "name mismatch without policy", version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("delete_todo"), status: 400, rpc: -32020},
		{name: "name mismatch from an old client with policy", policy: true, version: old, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("delete_todo"), status: 400, rpc: -32020},
		{name: "name mismatch, no version header, policy", policy: true, headers: hdr{"Mcp-Name": {"add_todo"}}, body: call("delete_todo"), status: 400, rpc: -32020},
		{name: "method header case differs", policy: true, version: modern, headers: hdr{"Mcp-Method": {"Tools/Call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "missing method header (modern)", policy: true, version: modern, headers: hdr{"Mcp-Name": {"add_todo"}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "missing name header (modern)", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "missing name header for resources/read (modern)", policy: true, version: modern, headers: hdr{"Mcp-Method": {"resources/read"}}, body: read, status: 400, rpc: -32020, rpcID: `"r"`},
		{name: "missing headers from an old client", policy: true, version: old, body: call("add_todo"), status: 200},
		{name: "missing headers, no version header", policy: true, body: call("add_todo"), status: 200},
		{name: "tools/list needs no name", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/list"}}, body: list, status: 200},
		{name: "name header on a method without a name", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/list"}, "Mcp-Name": {"x"}}, body: list, status: 400, rpc: -32020},
		{name: "encoded name", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {b64sentinel("add_todo")}}, body: call("add_todo"), status: 200},
		{name: "encoded non-ASCII name", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {b64sentinel("résumé 世界")}}, body: call("résumé 世界"), status: 200},
		{name: "encoded name mismatch", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {b64sentinel("add_todo")}}, body: call("delete_todo"), status: 400, rpc: -32020},
		{name: "malformed base64", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"=?base64?!!!?="}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "base64 of invalid UTF-8", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"=?base64?/w==?="}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "upper-case sentinel is a plain value", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"=?BASE64?YWRkX3RvZG8=?="}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "encoded method is not decoded", policy: true, version: modern, headers: hdr{"Mcp-Method": {b64sentinel("tools/call")}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "non-ASCII plain name", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"r\xc3\xa9sum\xc3\xa9"}}, body: call("résumé"), status: 400, rpc: -32020},
		{name: "two name headers", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo", "add_todo"}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "two method headers", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call", "tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), status: 400, rpc: -32020},
		{name: "headers on a response body", policy: true, version: old, headers: hdr{"Mcp-Method": {"tools/call"}}, body: `{"jsonrpc":"2.0","id":1,"result":{}}`, status: 400, rpc: -32020},
		{name: "notification without headers (modern)", policy: true, version: modern, body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, status: 200},
		{name: "case-folded body member still compared", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"delete_todo"}}`, status: 400, rpc: -32020},
		{name: "policy uses the body, not the header", policy: true, version: old, body: call("delete_todo"), scope: "mcp todo:call", status: 403},
		{name: "batch of old clients", policy: true, version: old, body: "[" + list + "," + call("add_todo") + "]", status: 200},
		{name: "batch with headers that cannot mirror it", policy: true, version: old, headers: hdr{"Mcp-Method": {"tools/list"}}, body: "[" + list + "," + call("add_todo") + "]", status: 400, rpc: -32020},
		{name: "batch with headers that agree", policy: true, version: old, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: "[" + call("add_todo") + "," + call("add_todo") + "]", status: 200},
		{name: "gzip body, match", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), enc: "gzip", status: 200},
		{name: "gzip body, mismatch", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("delete_todo"), enc: "gzip", status: 400, rpc: -32020},
		{name: "gzip body, policy reads it", policy: true, version: old, body: call("delete_todo"), enc: "gzip", scope: "mcp todo:call", status: 403},
		{name: "deflate body, mismatch", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("delete_todo"), enc: "deflate", status: 400, rpc: -32020},
		{name: "brotli body refused", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), enc: "br", status: 415},
		{name: "stacked encodings refused", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), enc: "gzip, gzip", status: 415},
		{name: "gzip header on a plain body", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo"), enc: "gzip-lie", status: 400},
		{name: "oversized body refused, not parsed", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo") + strings.Repeat(" ", 600), status: 413},
		{name: "gzip bomb refused", policy: true, version: modern, headers: hdr{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add_todo"}}, body: call("add_todo") + strings.Repeat(" ", 5000), enc: "gzip", status: 413},
		{name: "old client without policy: body not read", version: old, headers: hdr{"Mcp-Method": {"tools/list"}}, body: "not json", status: 200},
		{name: "malformed version is not modern", version: "2026-7-28", body: "not json", status: 200},
	}
	fixtures := map[bool]*fixture{
		true: newFixture(t, func(c *Config) {
			c.MethodScopes = map[string][]string{"tools/call": {"todo:call"}, "tools/call:delete_todo": {"todo:admin"}, "resources/read:todo://secret": {"todo:secret"}}
			c.MaxBodyBytes = 512
		}),
		false: newFixture(t, func(c *Config) { c.MaxBodyBytes = 512 }),
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := fixtures[c.policy]
			scope := c.scope
			if scope == "" {
				scope = "mcp todo:call todo:admin todo:secret"
			}
			tok := f.token(func(_, cl map[string]any) { cl["scope"] = scope })
			sent := c.body
			switch c.enc {
			case "gzip", "gzip, gzip":
				sent = gzipped(t, c.body)
			case "deflate":
				sent = deflated(t, c.body)
			}
			r := httptest.NewRequest("POST", testResource, strings.NewReader(sent))
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header.Set("Content-Type", "application/json")
			if c.version != "" {
				r.Header.Set("MCP-Protocol-Version", c.version)
			}
			for k, vs := range c.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			if c.enc != "" {
				r.Header.Set("Content-Encoding", strings.TrimSuffix(c.enc, "-lie"))
			}
			before := f.reached.Load()
			w := f.do(r)
			if w.Code != c.status {
				t.Fatalf("status = %d, want %d (%s)", w.Code, c.status, w.Body)
			}
			reached := f.reached.Load() > before
			if reached != (c.status == 200) {
				t.Fatalf("upstream reached = %v with status %d", reached, w.Code)
			}
			if reached {
				f.mu.Lock()
				got := f.bodies[len(f.bodies)-1]
				f.mu.Unlock()
				if got != sent {
					t.Fatalf("upstream body changed: %q, want %q", got, sent)
				}
			}
			if c.rpc != 0 {
				var msg struct {
					JSONRPC string          `json:"jsonrpc"`
					ID      json.RawMessage `json:"id"`
					Error   struct {
						Code    int    `json:"code"`
						Message string `json:"message"`
					} `json:"error"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &msg); err != nil {
					t.Fatalf("body %q: %v", w.Body, err)
				}
				if msg.JSONRPC != "2.0" || msg.Error.Code != c.rpc || !strings.HasPrefix(msg.Error.Message, "header mismatch") {
					t.Fatalf("JSON-RPC error = %+v", msg)
				}
				if c.rpcID != "" && string(msg.ID) != c.rpcID {
					t.Fatalf("id = %s, want %s", msg.ID, c.rpcID)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type = %q", ct)
				}
				if w.Header().Get("WWW-Authenticate") != "" {
					t.Fatal("a header mismatch is not an authentication challenge")
				}
				// The refusal never echoes the client's header values.
				for _, vs := range c.headers {
					for _, v := range vs {
						if len(v) > 3 && strings.Contains(w.Body.String(), v) {
							t.Fatalf("refusal echoes %q: %s", v, w.Body)
						}
					}
				}
			}
		})
	}
}

func TestDecodeHeaderValue(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"us-west1", "us-west1", true},
		{"=?base64?SGVsbG8sIOS4lueVjA==?=", "Hello, 世界", true},
		{"=?base64?IHBhZGRlZCA=?=", " padded ", true},
		{"=?base64?bGluZTEKbGluZTI=?=", "line1\nline2", true},
		{"=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=", "=?base64?literal?=", true},
		{"=?base64??=", "", true},
		{"", "", true},
		{"a b\tc", "a b\tc", true},
		{" lead", "", false},
		{"trail\t", "", false},
		{"caf\xc3\xa9", "", false},
		{"a\x00b", "", false},
		{"a\x7fb", "", false},
		{"=?base64?SGVsbG8?=", "", false},  // unpadded
		{"=?base64?SGVsbG9=?=", "", false}, // non-canonical padding bits
		{"=?base64?SGVs bG8=?=", "", false},
		{"=?base64?", "=?base64?", true}, // too short to be the sentinel: plain
		{"=?BASE64?SGVsbG8=?=", "=?BASE64?SGVsbG8=?=", true},
	}
	for _, c := range cases {
		got, err := DecodeHeaderValue(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("DecodeHeaderValue(%q) = %q, %v; want %q ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

// FuzzDecodeHeaderValue: the decoder never panics, a decoded value is valid
// UTF-8 (plain values are printable ASCII), and encoding a decoded value the
// way a client must (plain when safe, else the sentinel) decodes back to it.
func FuzzDecodeHeaderValue(f *testing.F) {
	for _, s := range []string{"us-west1", "=?base64?SGVsbG8sIOS4lueVjA==?=", "=?base64??=", "=?base64?", " x", "=?base64?/w==?=", "a\tb", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := DecodeHeaderValue(v)
		if err != nil {
			return
		}
		if !strings.HasPrefix(v, "=?base64?") || !strings.HasSuffix(v, "?=") || len(v) < len("=?base64??=") {
			if got != v {
				t.Fatalf("plain value changed: %q -> %q", v, got)
			}
			for i := 0; i < len(got); i++ {
				if got[i] != '\t' && (got[i] < 0x20 || got[i] > 0x7e) {
					t.Fatalf("plain value %q has byte %#x", got, got[i])
				}
			}
		}
		again, err := DecodeHeaderValue(b64sentinel(got))
		if err != nil || again != got {
			t.Fatalf("round trip of %q: %q, %v", got, again, err)
		}
		// A client would send the decoded value in a header line: it must
		// never let a CR or LF through a plain value.
		if !strings.HasPrefix(v, "=?base64?") && strings.ContainsAny(got, "\r\n") {
			t.Fatalf("plain value with a line break: %q", got)
		}
	})
}

// TestHeaderMismatchBeforeUpstreamWithCaddyErrors: the body of a -32020
// refusal is JSON-RPC (Challenge.Body), whatever writes it.
func TestHeaderMismatchBody(t *testing.T) {
	ch := headerMismatch("header mismatch: x", json.RawMessage(`"abc"`))
	var m map[string]any
	if err := json.Unmarshal(ch.Body(), &m); err != nil {
		t.Fatal(err)
	}
	if m["id"] != "abc" || m["error"].(map[string]any)["code"].(float64) != -32020 || Outcome(ch) != OutcomeHeaderMismatch || ch.Status != http.StatusBadRequest {
		t.Fatalf("%v %s", m, Outcome(ch))
	}
	if b := headerMismatch("x", json.RawMessage("not json")).Body(); !bytes.Contains(b, []byte(`"id":null`)) {
		t.Fatalf("%s", b)
	}
}
