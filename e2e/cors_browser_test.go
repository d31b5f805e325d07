package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// corsFetchJS runs in a page: an MCP request to the guarded endpoint on
// another origin, first without a token (the 401 and its challenge must be
// readable from JS), then with the token. %[1]q is the MCP URL, %[2]q the
// token. The headers are those of an MCP 2026-07-28 client, so the browser
// preflights.
const corsFetchJS = `(async () => {
	const body = JSON.stringify({jsonrpc: "2.0", id: 1, method: "tools/call", params: {name: "list_todos", arguments: {limit: 5}}});
	const headers = {
		"Content-Type": "application/json",
		"Accept": "application/json, text/event-stream",
		"MCP-Protocol-Version": "2026-07-28",
		"Mcp-Method": "tools/call",
		"Mcp-Name": "list_todos",
		"Mcp-Param-Limit": "5",
	};
	const out = {};
	try {
		let r = await fetch(%[1]q, {method: "POST", headers, body});
		out.status = r.status;
		out.challenge = r.headers.get("WWW-Authenticate");
		r = await fetch(%[1]q, {method: "POST", headers: {...headers, "Authorization": "Bearer " + %[2]q}, body});
		out.authedStatus = r.status;
		out.session = r.headers.get("Mcp-Session-Id");
		out.body = await r.text();
	} catch (e) {
		out.error = String(e);
	}
	return out;
})()`

type corsFetchResult struct {
	Status       int    `json:"status"`
	Challenge    string `json:"challenge"`
	AuthedStatus int    `json:"authedStatus"`
	Session      string `json:"session"`
	Body         string `json:"body"`
	Error        string `json:"error"`
}

// TestBrowserCORSOnGuardedEndpoint (requirement 27) proves in headless
// Chromium that a page on a cors_origins origin can use the guarded MCP
// endpoint on another origin: the preflight is answered before any token
// check, the 401's WWW-Authenticate is readable from JS, and the request
// with a token succeeds with Mcp-Session-Id exposed. A page on an origin
// that is not listed cannot: its preflight is refused and the upstream never
// sees its request.
func TestBrowserCORSOnGuardedEndpoint(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("MCPAUTH_TEST_STRICT") == "1" {
			t.Fatal("chromium is not installed (apt-get install chromium; scripts/test-deps.sh does it): refusing to skip")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	page := func() *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<!doctype html><title>web agent</title><p id=ready>ready</p>"))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	allowed, other := page(), page()

	// The upstream: answers like a streamable HTTP MCP server and records
	// what reached it.
	var mu sync.Mutex
	var reached []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reached = append(reached, r.Method+" "+r.Header.Get("Origin"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Mcp-Session-Id", "session-42")
		w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"no todos"}]}}`))
	}))
	t.Cleanup(upstream.Close)

	s := startStack(t, stackOpts{
		upstream:   strings.TrimPrefix(upstream.URL, "http://"),
		extraGuard: "cors_origins " + allowed.URL,
	})
	tok := s.login(t, s.oauthConfig("todo:read")).AccessToken

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("ignore-certificate-errors", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first call starts the browser: no timeout on it.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	run := func(t *testing.T, origin string) corsFetchResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/"), chromedp.WaitVisible(chromedp.ID("ready"))); err != nil {
			t.Fatalf("page %s: %v", origin, err)
		}
		res, err := chromedp.Run(ctx, chromedp.Evaluate[corsFetchResult](fmt.Sprintf(corsFetchJS, s.MCPURL, tok), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch script: %v", err)
		}
		return res
	}

	t.Run("listed origin", func(t *testing.T) {
		res := run(t, allowed.URL)
		if res.Error != "" {
			t.Fatalf("fetch failed in the page: %s", res.Error)
		}
		if res.Status != 401 || !strings.Contains(res.Challenge, `resource_metadata="`+s.Issuer+`/.well-known/oauth-protected-resource/mcp"`) {
			t.Fatalf("without a token: %d, WWW-Authenticate read from JS %q", res.Status, res.Challenge)
		}
		var rpc map[string]any
		if res.AuthedStatus != 200 || res.Session != "session-42" || json.Unmarshal([]byte(res.Body), &rpc) != nil || rpc["result"] == nil {
			t.Fatalf("with the token: %d, Mcp-Session-Id %q, body %q", res.AuthedStatus, res.Session, res.Body)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(reached) != 1 || reached[0] != "POST "+allowed.URL {
			t.Fatalf("upstream saw %v, want exactly the authorized POST", reached)
		}
	})

	t.Run("unlisted origin", func(t *testing.T) {
		mu.Lock()
		before := len(reached)
		mu.Unlock()
		res := run(t, other.URL)
		if res.Error == "" {
			t.Fatalf("a page on an unlisted origin read the answers: %+v", res)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(reached) != before {
			t.Fatalf("upstream reached from an unlisted origin: %v", reached[before:])
		}
	})
}

// TestGuardInheritsAppCORSOrigins (requirement 27): with cors_origins only in
// the mcp_auth block, the guard of this config's issuer answers preflights
// from those origins before the token check, echoes only the MCP request
// headers, and still refuses any other Origin with 403.
func TestGuardInheritsAppCORSOrigins(t *testing.T) {
	const web = "https://web.example"
	s := startStack(t, stackOpts{extraApp: "cors_origins " + web})
	do := func(method, origin string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, s.MCPURL, nil)
		req.Header.Set("Origin", origin)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := do("OPTIONS", web, map[string]string{
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "authorization, content-type, mcp-method, mcp-name, mcp-param-city, x-evil",
	})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != web ||
		resp.Header.Get("Access-Control-Allow-Headers") != "authorization, content-type, mcp-method, mcp-name, mcp-param-city" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp = do("POST", web, nil)
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != web ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Fatalf("challenge for the listed origin: %d %v", resp.StatusCode, resp.Header)
	}
	for _, m := range []string{"OPTIONS", "POST"} {
		resp = do(m, "https://evil.example", map[string]string{"Access-Control-Request-Method": "POST"})
		if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s from an unlisted origin: %d %v", m, resp.StatusCode, resp.Header)
		}
	}
}
