package resourceguard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// toolsListResult is a tools/list result with the given tools (each with a
// description and a schema, so that members other than name must survive).
func toolsListResult(id string, names ...string) string {
	var tools []string
	for _, n := range names {
		tools = append(tools, fmt.Sprintf(`{"name":%q,"description":"does %s","inputSchema":{"type":"object","properties":{"x":{"type":"string"}}}}`, n, n))
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[%s],"nextCursor":"c2"}}`, id, strings.Join(tools, ","))
}

// toolNames returns the tool names of a tools/list result (strictly parsed).
func toolNames(t testing.TB, msg []byte) []string {
	t.Helper()
	var m struct {
		ID     json.RawMessage `json:"id"`
		Result struct {
			Tools []struct {
				Name        string          `json:"name"`
				Description string          `json:"description"`
				InputSchema json.RawMessage `json:"inputSchema"`
			} `json:"tools"`
			NextCursor string `json:"nextCursor"`
		} `json:"result"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("result %q: %v", msg, err)
	}
	if m.Result.NextCursor != "c2" {
		t.Fatalf("other result members lost: %s", msg)
	}
	names := []string{}
	for _, tl := range m.Result.Tools {
		if tl.Description != "does "+tl.Name || len(tl.InputSchema) == 0 {
			t.Fatalf("tool %q lost members: %s", tl.Name, msg)
		}
		names = append(names, tl.Name)
	}
	return names
}

// toolsFixture is a guard with per-tool scopes over an upstream handler.
func toolsFixture(t testing.TB, mutate func(*Config), upstream http.HandlerFunc) (*fixture, http.Handler) {
	f := newFixture(t, func(c *Config) {
		c.Scopes = []string{"todo:read"}
		c.MethodScopes = map[string][]string{
			"tools/call:add_todo":    {"todo:write"},
			"tools/call:delete_todo": {"todo:admin"},
		}
		c.ScopeHierarchy = map[string][]string{"todo:admin": {"todo:write"}}
		if mutate != nil {
			mutate(c)
		}
	})
	return f, f.g.Wrap(upstream)
}

func rpcPost(tok, body string) *http.Request {
	r := httptest.NewRequest("POST", testResource, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Accept-Encoding", "gzip")
	return r
}

const listReq = `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}`

// TestToolsListFiltered: a tools/list result reaches the client with only
// the tools its token may call, as JSON and as SSE (requirement 31), and a
// tools/call of a hidden tool is still refused with a step-up challenge
// naming every scope it needs.
func TestToolsListFiltered(t *testing.T) {
	all := []string{"list_todos", "add_todo", "delete_todo"}
	cases := []struct {
		scope string
		want  []string
	}{
		{"todo:read", []string{"list_todos"}},
		{"todo:read todo:write", []string{"list_todos", "add_todo"}},
		{"todo:read todo:admin", all}, // admin implies write
	}
	for _, kind := range []string{"json", "sse", "sse-crlf", "sse-split-data"} {
		upstream := func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Accept-Encoding") != "" {
				t.Error("a tools/list request reached the upstream with Accept-Encoding")
			}
			res := toolsListResult("3", all...)
			switch kind {
			case "json":
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", fmt.Sprint(len(res)))
				_, _ = io.WriteString(w, res)
			case "sse", "sse-crlf", "sse-split-data":
				w.Header().Set("Content-Type", "text/event-stream")
				nl := "\n"
				if kind == "sse-crlf" {
					nl = "\r\n"
				}
				fmt.Fprintf(w, ": keepalive%[1]s%[1]sevent: message%[1]sdata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}%[1]s%[1]s", nl)
				w.(http.Flusher).Flush()
				data := "data: " + res
				if kind == "sse-split-data" {
					// A pretty-printed result over several data lines.
					var pretty bytes.Buffer
					_ = json.Indent(&pretty, []byte(res), "", "  ")
					data = "data: " + strings.ReplaceAll(pretty.String(), "\n", nl+"data: ")
				}
				// Written in small pieces, as a stream arrives.
				ev := "event: message" + nl + "id: 9" + nl + data + nl + nl
				for i := 0; i < len(ev); i += 7 {
					_, _ = io.WriteString(w, ev[i:min(i+7, len(ev))])
				}
			}
		}
		f, h := toolsFixture(t, nil, upstream)
		for _, c := range cases {
			t.Run(kind+"/"+c.scope, func(t *testing.T) {
				tok := f.token(func(_, cl map[string]any) { cl["scope"] = c.scope })
				w := httptest.NewRecorder()
				h.ServeHTTP(w, rpcPost(tok, listReq))
				if w.Code != 200 {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				var msg []byte
				if kind == "json" {
					msg = w.Body.Bytes()
					if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(len(msg)) {
						t.Fatalf("Content-Length %s for %d bytes", cl, len(msg))
					}
				} else {
					body := w.Body.String()
					if !strings.HasPrefix(body, ": keepalive") || !strings.Contains(body, "notifications/progress") || !strings.Contains(body, "id: 9") {
						t.Fatalf("other events or fields lost: %q", body)
					}
					events := strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n\n")
					var datas []string
					for _, ev := range events {
						var d []string
						for _, line := range strings.Split(ev, "\n") {
							if v, ok := strings.CutPrefix(line, "data: "); ok {
								d = append(d, v)
							}
						}
						if len(d) > 0 {
							datas = append(datas, strings.Join(d, "\n"))
						}
					}
					if len(datas) != 2 {
						t.Fatalf("events: %q", body)
					}
					msg = []byte(datas[1])
				}
				if got := toolNames(t, msg); !slices.Equal(got, c.want) {
					t.Fatalf("tools = %v, want %v", got, c.want)
				}
			})
		}
		t.Run(kind+"/hidden tool still refused with step-up", func(t *testing.T) {
			tok := f.token(func(_, cl map[string]any) { cl["scope"] = "todo:read" })
			before := f.reached.Load()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, rpcPost(tok, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_todo"}}`))
			if w.Code != 403 || f.reached.Load() != before {
				t.Fatalf("status %d", w.Code)
			}
			_, params, err := parseChallenge(w.Header().Get("WWW-Authenticate"))
			if err != nil || params["error"] != "insufficient_scope" || params["scope"] != "todo:read todo:admin" {
				t.Fatalf("challenge %v %v", params, err)
			}
		})
	}
}

// TestToolsListFilterOnlyWrapsToolsList: other requests get the original
// ResponseWriter (nothing buffered), and without per-tool scopes, or with
// the filter disabled, tools/list is not touched.
func TestToolsListFilterOnlyWrapsToolsList(t *testing.T) {
	f, _ := toolsFixture(t, nil, nil)
	tok := f.token(nil)
	rec := httptest.NewRecorder()
	for _, body := range []string{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_todos"}}`, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}`} {
		d, c := f.g.Authorize(rpcPost(tok, body))
		if c != nil {
			t.Fatal(c)
		}
		if fw, _ := f.g.FilterWriter(rec, d); fw != http.ResponseWriter(rec) {
			t.Fatalf("%s: wrapped", body)
		}
	}
	d, _ := f.g.Authorize(rpcPost(tok, listReq))
	if fw, _ := f.g.FilterWriter(rec, d); fw == http.ResponseWriter(rec) {
		t.Fatal("tools/list not wrapped")
	}
	for name, mutate := range map[string]func(*Config){
		"no per-tool scopes": func(c *Config) { c.MethodScopes = map[string][]string{"tools/call": {"todo:read"}} },
		"filter disabled":    func(c *Config) { c.DisableToolsListFilter = true },
	} {
		f2, _ := toolsFixture(t, mutate, nil)
		d, c := f2.g.Authorize(rpcPost(f2.token(nil), listReq))
		if c != nil {
			t.Fatal(c)
		}
		if fw, _ := f2.g.FilterWriter(rec, d); fw != http.ResponseWriter(rec) {
			t.Fatalf("%s: wrapped", name)
		}
	}
}

// TestToolsListFilterFailsClosed: a result too large to hold, compressed, or
// unreadable is replaced by a JSON-RPC error, never passed on unfiltered.
func TestToolsListFilterFailsClosed(t *testing.T) {
	big := toolsListResult("3", "list_todos", "delete_todo", strings.Repeat("x", 300))
	cases := []struct {
		name   string
		ct, ce string
		body   string
		status int
	}{
		{"json over the limit", "application/json", "", big, 502},
		{"compressed answer", "application/json", "gzip", gzipped(t, toolsListResult("3", "delete_todo")), 502},
		{"unreadable JSON", "application/json", "", `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"delete_todo"}]`, 502},
		{"duplicate tools member", "application/json", "", `{"jsonrpc":"2.0","id":3,"result":{"tools":[],"Tools":[{"name":"delete_todo"}]}}`, 502},
		{"sse event over the limit", "text/event-stream", "", "data: " + big + "\n\n", 200},
		{"sse unreadable data", "text/event-stream", "", "data: {\"result\":{\"tools\":[{\"name\":\"delete_todo\"}\n\n", 200},
		{"sse unterminated result", "text/event-stream", "", "data: " + toolsListResult("3", "delete_todo"), 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, h := toolsFixture(t, func(cfg *Config) { cfg.MaxToolsListBytes = 400 }, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", c.ct)
				if c.ce != "" {
					w.Header().Set("Content-Encoding", c.ce)
				}
				_, _ = io.WriteString(w, c.body)
			})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, rpcPost(f.token(nil), listReq))
			if w.Code != c.status {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			body := w.Body.String()
			if strings.Contains(body, "delete_todo") || strings.Contains(body, "xxxxx") {
				t.Fatalf("hidden tool passed: %q", body)
			}
			if c.name != "sse unterminated result" && !strings.Contains(body, `"code":-32603`) {
				t.Fatalf("no JSON-RPC error: %q", body)
			}
			if c.ce != "" && w.Header().Get("Content-Encoding") != "" {
				t.Fatal("Content-Encoding kept on the error")
			}
		})
	}
}

// TestToolsListSSEStreamsEvents: events before the result reach the client
// as soon as they are complete (the filter holds one event at a time).
func TestToolsListSSEStreamsEvents(t *testing.T) {
	release := make(chan struct{})
	f, h := toolsFixture(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: "+toolsListResult("3", "list_todos", "delete_todo")+"\n\n")
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := rpcPost(f.token(nil), listReq)
	req.RequestURI = ""
	req.URL, _ = req.URL.Parse(srv.URL + "/mcp")
	req = req.WithContext(ctx)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "notifications/progress") {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "list_todos") || strings.Contains(string(rest), "delete_todo") {
		t.Fatalf("rest: %q", rest)
	}
}

// TestToolPolicy is the exported per-tool policy.
func TestToolPolicy(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Scopes = []string{"mcp"}
		c.MethodScopes = map[string][]string{"tools/call": {"todo:call"}, "tools/call:delete_todo": {"todo:admin"}, "tools/call:add_todo": {"todo:write"}}
		c.ScopeHierarchy = map[string][]string{"todo:admin": {"todo:write"}}
	})
	p := f.g.ToolPolicy()
	if got := p.Tools(); !slices.Equal(got, []string{"add_todo", "delete_todo"}) {
		t.Fatal(got)
	}
	if got := p.ScopesFor("delete_todo"); !slices.Equal(got, []string{"mcp", "todo:call", "todo:admin"}) {
		t.Fatal(got)
	}
	if got := p.ScopesFor("unknown"); !slices.Equal(got, []string{"mcp", "todo:call"}) {
		t.Fatal(got)
	}
	if !p.Allows([]string{"mcp", "todo:call", "todo:admin"}, "add_todo") || p.Allows([]string{"mcp", "todo:call", "todo:write"}, "delete_todo") ||
		p.Allows([]string{"mcp", "todo:admin"}, "x") || !p.Allows([]string{"mcp", "todo:call"}, "x") {
		t.Fatal("Allows")
	}
}

// FuzzToolsListFilter: whatever the upstream sends, in JSON or in any SSE
// framing and chunking, the filter never panics and never lets a tool the
// token may not call reach the client inside a result a JSON decoder (Go's,
// case-insensitive) reads.
func FuzzToolsListFilter(f *testing.F) {
	for _, s := range []string{
		toolsListResult("1", "ok", "secret"),
		`[` + toolsListResult("1", "secret") + `,{"jsonrpc":"2.0","id":2,"result":{}}]`,
		`{"jsonrpc":"2.0","id":1,"RESULT":{"Tools":[{"NAME":"secret"}]}}`,
		`{"result":{"tools":[{"name":"ok"},{"name":"secret","name":"ok"}]}}`,
		`{"result":{"tools":null}}`, `{"result":{"tools":[1,"x",{"name":5}]}}`,
	} {
		f.Add([]byte(s), uint8(0), uint8(5))
		f.Add([]byte("data: "+s+"\n\n"), uint8(1), uint8(3))
		f.Add([]byte("event: message\r\ndata: "+s+"\r\n\r\n: c\r\r"), uint8(1), uint8(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, kind, chunk uint8) {
		// Half the runs also collect the listed tools (toolcatalog.go).
		filter := &toolFilter{keep: func(n string) bool { return n != "secret" }, id: json.RawMessage("1"), collecting: kind&2 != 0}
		defer func() {
			if len(filter.listed) > maxListedTools {
				t.Fatalf("%d tools collected, more than %d", len(filter.listed), maxListedTools)
			}
			for _, lt := range filter.listed {
				if lt.Name == "" || len(lt.Name) > maxListedName || utf8.RuneCountInString(lt.Title) > maxListedTitle || utf8.RuneCountInString(lt.Description) > maxListedDesc {
					t.Fatalf("collected tool out of bounds: %+v", lt)
				}
			}
		}()
		var out []byte
		if kind%2 == 0 {
			got, _, err := filter.filterBody(body)
			if err != nil {
				return
			}
			out = got
			checkNoSecret(t, out)
			// The held JSON answer is cut in its own buffer, in place:
			// the same bytes as a fresh copy.
			cuts, _ := filter.findCuts(body)
			own := append([]byte(nil), body...)
			if inPlace := appendCut(own[:0], own, cuts); !bytes.Equal(inPlace, out) {
				t.Fatalf("cut in place: %q; into a new buffer: %q", inPlace, out)
			}
			return
		}
		orig := append([]byte(nil), body...)
		defer func() {
			if !bytes.Equal(body, orig) {
				t.Fatalf("the framer wrote into the upstream's buffer: %q became %q", orig, body)
			}
		}()
		s := sseFramer{f: filter, max: 1 << 16}
		step := int(chunk%16) + 1
		for i := 0; i < len(body); i += step {
			o, err := s.feed(body[i:min(i+step, len(body))])
			out = append(out, o...)
			if err != nil {
				break
			}
		}
		out = append(out, s.end()...)
		// Framing does not depend on how the stream is cut: the same
		// bytes fed in one write give the same output.
		whole := sseFramer{f: filter, max: 1 << 16}
		all, werr := whole.feed(body)
		if werr == nil {
			all = append(all, whole.end()...)
			if len(body) <= 1<<16 && !bytes.Equal(all, out) {
				t.Fatalf("fed in %d-byte writes: %q; in one write: %q", step, out, all)
			}
		}
		// Dispatch the output as an SSE client does and check every
		// complete event's data.
		for _, ev := range strings.Split(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(out)), "\n\n") {
			if data, n := sseData([]byte(ev)); n > 0 {
				checkNoSecret(t, data)
			}
		}
	})
}

func checkNoSecret(t *testing.T, msg []byte) {
	t.Helper()
	var batch []json.RawMessage
	msgs := []json.RawMessage{msg}
	if json.Unmarshal(msg, &batch) == nil {
		msgs = batch
	}
	for _, m := range msgs {
		var v struct {
			Result struct {
				Tools []struct {
					Name string `json:"name"`
				} `json:"tools"`
			} `json:"result"`
		}
		if json.Unmarshal(m, &v) != nil {
			continue
		}
		for _, tl := range v.Result.Tools {
			if tl.Name == "secret" {
				t.Fatalf("hidden tool passed in %q", msg)
			}
		}
	}
}
