package resourceguard

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// catalogFixture is toolsFixture with a ToolsListed recorder, over an
// upstream that answers tools/list with answer (as JSON, or as one SSE
// event after a progress notification).
func catalogFixture(t *testing.T, answer *string, sse bool) (*fixture, http.Handler, func() [][]ListedTool) {
	var mu sync.Mutex
	var got [][]ListedTool
	f, h := toolsFixture(t, func(c *Config) {
		c.ToolsListed = func(tools []ListedTool) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, slices.Clone(tools))
		}
	}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if sse {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n")
			_, _ = io.WriteString(w, "event: message\ndata: "+*answer+"\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, *answer)
	})
	return f, h, func() [][]ListedTool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestToolsListedCatalog: the guard hands the consent page every tool of a
// filtered tools/list result (those hidden from this token too), with its
// title and description decoded, at most once per interval, bounded, and
// only from a result it passed on.
func TestToolsListedCatalog(t *testing.T) {
	long := strings.Repeat("é", maxListedDesc+50)
	answer := `{"jsonrpc":"2.0","id":3,"result":{"tools":[` +
		`{"name":"list_todos","title":"List todos","description":"Lists \"open\" todos \u2713"},` +
		`{"name":"add_todo","title":"<b>Add</b>","description":"` + long + `"},` +
		`{"name":"delete_todo","title":7,"description":null},` +
		`{"name":"` + strings.Repeat("n", maxListedName+1) + `","title":"too long a name"}` +
		`]}}`
	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprintf("sse=%v", sse), func(t *testing.T) {
			f, h, got := catalogFixture(t, &answer, sse)
			tok := f.token(func(_, cl map[string]any) { cl["scope"] = "todo:read" })
			list := func() {
				t.Helper()
				w := httptest.NewRecorder()
				h.ServeHTTP(w, rpcPost(tok, listReq))
				if w.Code != 200 || strings.Contains(w.Body.String(), "add_todo") {
					t.Fatalf("tools/list: %d %s", w.Code, w.Body)
				}
			}
			list()
			lists := got()
			if len(lists) != 1 {
				t.Fatalf("%d hand-offs, want 1", len(lists))
			}
			tools := lists[0]
			if len(tools) != 3 {
				t.Fatalf("tools %+v: want the three with a usable name, hidden ones included", tools)
			}
			if tools[0] != (ListedTool{Name: "list_todos", Title: "List todos", Description: `Lists "open" todos ✓`}) {
				t.Errorf("escapes not decoded: %+v", tools[0])
			}
			if tools[1].Name != "add_todo" || tools[1].Title != "<b>Add</b>" {
				t.Errorf("hidden tool: %+v (the text is passed as is; the page escapes it)", tools[1])
			}
			if n := utf8.RuneCountInString(tools[1].Description); n != maxListedDesc || !strings.HasSuffix(tools[1].Description, "…") {
				t.Errorf("long description: %d runes, want %d ending in an ellipsis", n, maxListedDesc)
			}
			if tools[2] != (ListedTool{Name: "delete_todo"}) {
				t.Errorf("non-string title and description: %+v", tools[2])
			}

			// Within the interval: filtered, not collected again.
			list()
			if n := len(got()); n != 1 {
				t.Fatalf("%d hand-offs within the interval, want 1", n)
			}
			f.clock.Advance(defaultListedEvery + time.Second)
			list()
			if n := len(got()); n != 2 {
				t.Fatalf("%d hand-offs after the interval, want 2", n)
			}
		})
	}
}

// TestToolsListedBounds: at most maxListedTools tools are handed on, and a
// result the guard refuses hands on nothing.
func TestToolsListedBounds(t *testing.T) {
	var names []string
	for i := range maxListedTools + 10 {
		names = append(names, fmt.Sprintf("tool_%03d", i))
	}
	answer := toolsListResult("3", names...)
	f, h, got := catalogFixture(t, &answer, false)
	tok := f.token(func(_, cl map[string]any) { cl["scope"] = "todo:read" })
	h.ServeHTTP(httptest.NewRecorder(), rpcPost(tok, listReq))
	if lists := got(); len(lists) != 1 || len(lists[0]) != maxListedTools {
		t.Fatalf("hand-offs %d, want 1 of %d tools", len(lists), maxListedTools)
	}

	answer = `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"list_todos"}]}` // truncated
	f.clock.Advance(defaultListedEvery + time.Second)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, rpcPost(tok, listReq))
	if w.Code != http.StatusBadGateway {
		t.Fatalf("invalid result: %d %s", w.Code, w.Body)
	}
	if n := len(got()); n != 1 {
		t.Fatalf("a refused result was handed on (%d hand-offs)", n)
	}

	// Over SSE, an event the filter refuses is replaced by an error event
	// and hands on nothing.
	fs, hs, gotSSE := catalogFixture(t, &answer, true)
	w = httptest.NewRecorder()
	hs.ServeHTTP(w, rpcPost(fs.token(func(_, cl map[string]any) { cl["scope"] = "todo:read" }), listReq))
	if !strings.Contains(w.Body.String(), "could not be filtered") {
		t.Fatalf("invalid SSE result: %s", w.Body)
	}
	if n := len(gotSSE()); n != 0 {
		t.Fatalf("a refused SSE result was handed on (%d hand-offs)", n)
	}
}

func TestCutRunes(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"}, {"abcd", 3, "ab…"}, {"ééé", 3, "ééé"}, {"éééé", 3, "éé…"}, {"", 1, ""},
	} {
		if got := cutRunes(c.in, c.n); got != c.want {
			t.Errorf("cutRunes(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
