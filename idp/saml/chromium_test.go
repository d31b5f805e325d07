package saml

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestChromiumCrossSitePost proves in real Chromium that the IdP's
// cross-site POST to our ACS carries the binding cookie because it is
// SameSite=None, and (the control) that it does not with SameSite=Lax, so
// the login fails. Our server is https://localhost:P1, the IdP
// https://127.0.0.1:P2: two different sites.
func TestChromiumCrossSitePost(t *testing.T) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("MCPAUTH_TEST_STRICT") == "1" {
			t.Fatal("chromium is not installed (apt-get install chromium): refusing to skip")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()

	tests := []struct {
		name     string
		sameSite http.SameSite
		binding  string
		ok       bool
	}{
		{"SameSite=None: signed in", http.SameSiteNoneMode, "", true},
		{"SameSite=None, POST binding (our nonce'd auto-submit): signed in", http.SameSiteNoneMode, "post", true},
		{"SameSite=Lax (control): cookie not sent, refused", http.SameSiteLaxMode, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{tlsIdP: true, host: "localhost", cfg: func(c *Config) { c.Binding = tc.binding }})
			e.prov.browser.SameSite = tc.sameSite
			public := strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)
			idpHost := mustHost(t, e.idp.srv.URL)
			if mustHost(t, public) == idpHost || !strings.HasPrefix(idpHost, "127.0.0.1") {
				t.Fatalf("not cross-site: %s vs %s", public, e.idp.srv.URL)
			}

			ctx, cancel := chromedp.NewContext(actx)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
				t.Fatalf("starting chromium: %v", err)
			}
			tctx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
			defer cancel2()
			steps := []chromedp.Action[chromedp.Void]{
				chromedp.Navigate(public + "/login?return_to=%2Fwhoami"),
				chromedp.WaitVisible(chromedp.CSS(`form[action="/login/corp"] button`)),
				chromedp.Click(chromedp.CSS(`form[action="/login/corp"] button`)),
				// At the IdP (another site): its login form.
				chromedp.WaitVisible(chromedp.CSS(`input[name=user]`)),
				chromedp.SendKeys(chromedp.CSS(`input[name=user]`), idpUser),
				chromedp.SendKeys(chromedp.CSS(`input[name=password]`), idpPassword),
				// Submitting it returns the auto-posting form to our ACS.
				chromedp.Click(chromedp.ID("login")),
			}
			for i, st := range steps {
				if err := chromedp.Do(tctx, st); err != nil {
					loc, _ := chromedp.Run(ctx, chromedp.Location())
					t.Fatalf("browser flow, step %d: %v (at %s)", i, err, loc)
				}
			}
			// Wait for the end: /whoami (signed in) or our error page at the ACS.
			var loc, body string
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				loc, _ = chromedp.Run(tctx, chromedp.Location())
				body, _ = chromedp.Run(tctx, chromedp.OuterHTML(chromedp.CSS("body")))
				// Location and body are read separately: stop on a consistent pair.
				if strings.HasPrefix(loc, public+"/whoami") && strings.Contains(body, "saml:corp") ||
					strings.HasPrefix(loc, public+"/login/corp/acs") && strings.Contains(body, "could not be completed") {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if tc.ok {
				if !strings.HasPrefix(loc, public+"/whoami") || !strings.Contains(body, `"Method":"saml:corp"`) {
					t.Fatalf("not signed in: at %s\n%s\nfailures %v", loc, body, e.failures())
				}
				if e.successes() != 1 || len(e.failures()) != 0 {
					t.Fatalf("audit: %d successes, failures %v", e.successes(), e.failures())
				}
				return
			}
			if !strings.HasPrefix(loc, public+"/login/corp/acs") || !strings.Contains(body, "could not be completed") {
				t.Fatalf("control: at %s\n%s", loc, body)
			}
			if f := e.failures(); len(f) != 1 || f[0] != "binding_cookie_missing" || e.successes() != 0 {
				t.Fatalf("control audit: failures %v, successes %d", f, e.successes())
			}
		})
	}
}

func mustHost(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname()
}
