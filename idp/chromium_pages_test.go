package idp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// TestChromiumPageLayouts renders the account page, an error page with its
// way forward, the login page and the consent page in real Chromium, in the
// light and dark colour schemes at 390 px (a phone) and 1280 px, saves a
// screenshot of each under test-artifacts/pages, and checks what a
// screenshot review would: no horizontal scrolling, every button and link
// of the page's actions fully inside the viewport and at least 36 px tall
// (a touch target), and the dark scheme really applied.
func TestChromiumPageLayouts(t *testing.T) {
	actx := chromiumAllocator(t)
	e := newEnv(t, nil)
	ctx0 := context.Background()
	alice := e.account(aliceEmail).ID
	if err := e.store.PutClient(ctx0, storage.Client{ID: "cli", Name: "A command-line app with a rather long name", RedirectURIs: []string{"http://127.0.0.1/callback"}}); err != nil {
		t.Fatal(err)
	}
	e.grantFor(t, "g1", "cli", alice, e.clock.Now().Add(-time.Hour))
	e.grantFor(t, "g2", "https://claude.ai/oauth/claude-code-client-metadata", alice, e.clock.Now())

	artifacts := filepath.Join("..", "test-artifacts", "pages")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, c := context.WithTimeout(bctx, 20*time.Second)
		defer c()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	// Sign in once (the pages below need a session).
	do(chromedp.Navigate(e.srv.URL+"/login?return_to=/account"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), aliceEmail),
		chromedp.SendKeys(chromedp.ID("password"), alicePW),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label^="Disconnect"]`)))

	pages := []struct {
		name string
		open []chromedp.Action[chromedp.Void]
		// wait is a selector the page must show; actions are the selectors
		// whose elements must fit.
		wait, actions string
	}{
		{"account", []chromedp.Action[chromedp.Void]{chromedp.Navigate(e.srv.URL + "/account")}, `button[aria-label^="Disconnect"]`, ".apps button, a.btn"},
		{"error", []chromedp.Action[chromedp.Void]{
			// A sign-out form whose token has expired: the error page offers
			// to resume the flow and the account page.
			chromedp.Navigate(e.srv.URL + "/logout?return_to=" + "/authorize%3Fconsent%3D1"),
			chromedp.WaitVisible(chromedp.CSS(`form button[type=submit]`)),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('input[name=csrf_token]').value='expired'`),
			chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		}, `.actions a.btn-primary`, ".actions a.btn"},
		{"consent", []chromedp.Action[chromedp.Void]{chromedp.Navigate(e.srv.URL + "/authorize?consent=1")}, `button[value=approve]`, "button"},
	}
	type look struct{ bg string }
	for _, pg := range pages {
		seen := map[string]look{}
		for _, scheme := range []string{"light", "dark"} {
			for _, width := range []int64{390, 1280} {
				name := fmt.Sprintf("%s-%s-%d", pg.name, scheme, width)
				do(chromedp.EmulateViewport(width, 844),
					func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
						_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
							Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
						return chromedp.Void{}, err
					})
				do(pg.open...)
				do(chromedp.WaitVisible(chromedp.CSS(pg.wait)))
				tctx, c := context.WithTimeout(bctx, 20*time.Second)
				shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
				if err != nil {
					c()
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(artifacts, name+".png"), shot, 0o644); err != nil {
					c()
					t.Fatal(err)
				}
				probe := fmt.Sprintf(`(() => {
					const vw = window.innerWidth, bad = [];
					if (document.documentElement.scrollWidth > vw) bad.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + vw);
					for (const el of document.querySelectorAll(%q)) {
						const r = el.getBoundingClientRect();
						if (r.width === 0) continue;
						if (r.left < 0 || r.right > vw) bad.push('"' + el.textContent.trim() + '" outside the viewport');
						if (r.height < 36) bad.push('"' + el.textContent.trim() + '" is ' + r.height + ' px tall');
					}
					return JSON.stringify({bad, bg: getComputedStyle(document.body).backgroundColor});
				})()`, pg.actions)
				out, err := chromedp.Run(tctx, chromedp.Evaluate[string](probe))
				c()
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(out, `"bad":["`) {
					t.Errorf("%s: %s (screenshot %s.png)", name, out, name)
				}
				bg := out[strings.Index(out, `"bg":`):]
				if prev, ok := seen[fmt.Sprint(width)]; ok && prev.bg == bg {
					t.Errorf("%s: the dark scheme has the light background (%s)", name, bg)
				}
				seen[fmt.Sprint(width)] = look{bg: bg}
			}
		}
	}
}
