package idp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mcpauth/caddy-mcpauth/authserver"
)

// TestChromiumRedirectChains proves in a real browser that the pages' CSP
// lets the form POSTs end at the client's redirect URI on another origin:
// Chromium applies form-action to every redirect after a form submission, so
// login, signup and consent pages must not restrict it (see securityHeaders).
// It also exercises the __Host- cookies over TLS in a real cookie store.
func TestChromiumRedirectChains(t *testing.T) {
	actx := chromiumAllocator(t)
	hits := make(chan string, 4)
	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r) // favicon
			return
		}
		hits <- r.URL.RawQuery
		w.Write([]byte("<!doctype html><title>client</title><p id=done>back at the client</p>"))
	}))
	defer client.Close()
	e := newEnv(t, nil)
	// The consent page lists the tools each scope unlocks (requirement 31).
	// With the upstream's description of a tool (from a tools/list the
	// guard saw).
	e.consen.Tools = []authserver.ScopeTools{{Scope: "mcp:tools", Tools: []authserver.ConsentTool{{Name: "list_todos"},
		{Name: "delete_todo", New: true, Title: "Delete a todo", Description: "Removes a todo for good; it cannot be undone."}}}}
	// The redirect URI of a native client: loopback http, another origin.
	e.clientCallback = strings.Replace(client.URL, "127.0.0.1", "localhost", 1) + "/callback"

	tests := []struct {
		name, start, want string
		consent           bool
	}{
		{"consent approve", "/authorize?consent=1", "code=c0de&decision=approve", true},
		{"login then skip consent", "/authorize?skip=1", "code=c0de&decision=skipped", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := chromedp.NewContext(actx)
			defer cancel()
			// The first call starts the browser: no timeout on it.
			if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
				t.Fatalf("starting chromium: %v", err)
			}
			tctx, cancel2 := context.WithTimeout(ctx, 20*time.Second)
			defer cancel2()
			steps := []chromedp.Action[chromedp.Void]{
				chromedp.Navigate(e.srv.URL + tc.start),
				chromedp.WaitVisible(chromedp.ID("email")),
				chromedp.SendKeys(chromedp.ID("email"), aliceEmail),
				chromedp.SendKeys(chromedp.ID("password"), alicePW),
				chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			}
			var tools, banner string
			var shot []byte
			if tc.consent {
				steps = append(steps,
					chromedp.WaitVisible(chromedp.CSS(`button[value=approve]`)),
					chromedp.WaitVisible(chromedp.CSS(`ul.tools li`)),
					chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
						var err error
						if tools, err = chromedp.Text(chromedp.CSS(`ul.tools`))(ctx, tg); err != nil {
							return err
						}
						if banner, err = chromedp.Text(chromedp.ID("new-tools"))(ctx, tg); err != nil {
							return err
						}
						shot, err = chromedp.FullScreenshot(100)(ctx, tg) // 100: PNG
						return err
					}),
					chromedp.Click(chromedp.CSS(`button[value=approve]`)))
			}
			steps = append(steps, chromedp.WaitVisible(chromedp.ID("done")))
			for i, st := range steps {
				if err := chromedp.Do(tctx, st); err != nil {
					dctx, c3 := context.WithTimeout(ctx, 5*time.Second)
					defer c3()
					loc, _ := chromedp.Run(dctx, chromedp.Location())
					html, _ := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("body")))
					t.Fatalf("browser flow, step %d: %v (at %s)\n%s\naudit: %+v", i, err, loc, html, e.auditTypes("csrf."))
				}
			}
			if tc.consent {
				if !strings.Contains(tools, "list_todos") || !strings.Contains(tools, "delete_todo") || !strings.Contains(banner, "delete_todo") ||
					!strings.Contains(tools, "Delete a todo") || !strings.Contains(tools, "it cannot be undone") {
					t.Fatalf("consent page tools %q, banner %q", tools, banner)
				}
				dir := os.Getenv("MCPAUTH_E2E_ARTIFACTS")
				if dir == "" {
					dir = t.TempDir()
				}
				if err := os.WriteFile(filepath.Join(dir, "consent-tools.png"), shot, 0o644); err != nil || len(shot) == 0 {
					t.Fatalf("screenshot of the consent page: %d bytes, %v", len(shot), err)
				}
			}
			loc, err := chromedp.Run(tctx, chromedp.Location())
			if err != nil {
				t.Fatal(err)
			}
			select {
			case q := <-hits:
				if q != tc.want {
					t.Fatalf("callback query %q, want %q", q, tc.want)
				}
			default:
				t.Fatal("the client's redirect URI was never reached")
			}
			if !strings.HasPrefix(loc, e.clientCallback) {
				t.Fatalf("browser ended at %q", loc)
			}
		})
	}
}

// chromiumAllocator starts Debian's headless Chromium for a test (stopped at
// cleanup). Without Chromium the test skips, except under the test command
// (CI=true or MCPAUTH_TEST_STRICT=1), where it fails.
func chromiumAllocator(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("MCPAUTH_TEST_STRICT") == "1" {
			t.Fatal("chromium is not installed (apt-get install chromium; scripts/test-deps.sh does it): refusing to skip")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Flag("ignore-certificate-errors", true), chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	return actx
}
