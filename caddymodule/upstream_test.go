package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcpauth/caddy-mcpauth/config"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpauth/caddy-mcpauth/idp"
)

// A third kind of upstream provider, defined and registered here only: it
// plugs in through the idp registry without a line of caddymodule knowing
// it (JSON login.upstreams, Caddyfile `upstream testoauth <name> { … }`).
// Begin binds the attempt to the browser and redirects to a fake upstream;
// the callback completes through the Completer.

const testKindName = "testoauth"

func init() { idp.RegisterKind(testKind{}) }

type testKind struct{}

type testKindOptions struct {
	Name         string `json:"name"`
	DisplayName  string `json:"display_name,omitempty"`
	AuthorizeURL string `json:"authorize_url"`
}

func (testKind) Name() string                { return testKindName }
func (testKind) NewOptions() idp.KindOptions { return new(testKindOptions) }

func (testKind) Build(_ context.Context, opts idp.KindOptions, env idp.KindEnv) (idp.Provider, error) {
	o, ok := opts.(*testKindOptions)
	if !ok {
		return nil, fmt.Errorf("testoauth: options of type %T", opts)
	}
	up := idp.UpstreamConfig{Name: o.Name, DisplayName: o.DisplayName}
	if err := up.Check(testKindName); err != nil {
		return nil, err
	}
	base, err := url.Parse(env.BaseURL)
	if err != nil {
		return nil, err
	}
	return &testKindProvider{
		Upstream:  idp.NewUpstream(testKindName, up),
		authorize: env.Expand(o.AuthorizeURL),
		callback:  env.BaseURL + "/callback",
		cbPath:    base.Path + "/callback",
		binding: idp.BrowserBinding{Cookie: "mcpauth_testoauth_" + o.Name, SameSite: http.SameSiteLaxMode,
			TicketKind: "testoauth.state", TTL: 10 * time.Minute, Store: env.Store, Now: time.Now},
	}, nil
}

func (o *testKindOptions) ProviderName() string        { return o.Name }
func (o *testKindOptions) SetProviderName(name string) { o.Name = name }

func (o *testKindOptions) SetOption(name string, args []string) error {
	switch name {
	case "display_name":
		return idp.StringArg(name, args, &o.DisplayName)
	case "authorize_url":
		return idp.StringArg(name, args, &o.AuthorizeURL)
	}
	return idp.UnknownOption(testKindName, name)
}

func (o *testKindOptions) Validate() error {
	if o.AuthorizeURL == "" {
		return errors.New("testoauth: authorize_url is required")
	}
	return nil
}

type testKindProvider struct {
	idp.Upstream
	authorize, callback, cbPath string
	binding                     idp.BrowserBinding
}

func (p *testKindProvider) Begin(w http.ResponseWriter, r *http.Request, a idp.Attempt) error {
	if _, err := p.binding.Begin(r.Context(), w, []byte(a.ID)); err != nil {
		return err
	}
	http.Redirect(w, r, p.authorize+"?"+url.Values{"redirect_uri": {p.callback}}.Encode(), http.StatusSeeOther)
	return nil
}

func (p *testKindProvider) Handler(c idp.Completer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != p.cbPath {
			c.Error(w, r, http.StatusNotFound, "not_found", "This page does not exist.")
			return
		}
		_, attempt, err := p.binding.Take(w, r)
		if err != nil {
			c.FailUpstream(w, r, "", "state_unknown")
			return
		}
		c.CompleteUpstream(w, r, string(attempt), idp.ExternalIdentity{Provider: p.Name(), Subject: r.URL.Query().Get("sub"),
			Email: "carol@upstream.example", EmailVerified: true, Name: "Carol"})
	})
}

// login.upstreams holds any registered kind (idp.UpstreamOptions decodes
// it; see its tests): the test kind and the built-in ones alike, in button
// order after login.oidc and login.saml.
func TestLoginUpstreamsJSON(t *testing.T) {
	var l LoginConfig
	err := json.Unmarshal([]byte(`{"saml":[{"name":"s","idp_metadata_file":"/md.xml"}],"upstreams":[
		{"kind":"testoauth","name":"corp","authorize_url":"https://up.example/authorize"},
		{"kind":"oidc","name":"g","issuer":"https://accounts.google.com","client_id":"c"}],
		"oidc":[{"name":"o","issuer":"https://op.example","client_id":"c"}]}`), &l)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := l.Upstreams[0].Options.(*testKindOptions); !ok || o.AuthorizeURL != "https://up.example/authorize" {
		t.Fatalf("testoauth options %#v", l.Upstreams[0].Options)
	}
	if o, ok := l.Upstreams[1].Options.(*OIDCProvider); !ok || o.Issuer != "https://accounts.google.com" {
		t.Fatalf("oidc options in upstreams %#v", l.Upstreams[1].Options)
	}
	var kinds []string
	for _, u := range l.Providers() {
		kinds = append(kinds, u.Kind+":"+u.Options.ProviderName())
	}
	if got := strings.Join(kinds, " "); got != "oidc:o saml:s testoauth:corp oidc:g" || strings.Join(l.ProviderNames(), " ") != "o s corp g" {
		t.Fatalf("upstreams %s, names %v", got, l.ProviderNames())
	}
}

func TestCaddyfileUpstream(t *testing.T) {
	src := "{\n mcp_auth {\n  issuer https://auth.example.com\n  login {\n   upstream testoauth corp {\n    display_name \"Corp SSO\"\n" +
		"    authorize_url https://up.example/authorize\n   }\n  }\n }\n}\n"
	out, err := adapt(t, src)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, out); err != nil {
		t.Fatal(err)
	}
	want := `"upstreams":[{"kind":"testoauth","name":"corp","display_name":"Corp SSO","authorize_url":"https://up.example/authorize"}]`
	if !strings.Contains(compact.String(), want) {
		t.Fatalf("adapted JSON lacks %s:\n%s", want, out)
	}
	for name, c := range map[string]struct{ src, want string }{
		"no kind":        {"upstream\n", "upstream <kind> <name> { … }"},
		"unknown kind":   {"upstream ldap-nope corp {\n}\n", `unknown upstream provider kind "ldap-nope"`},
		"no name":        {"upstream testoauth {\n}\n", "testoauth <name> { … }"},
		"unknown option": {"upstream testoauth corp {\n authorize_url x\n scopes a\n}\n", `unknown testoauth option "scopes"`},
		"arg count":      {"upstream testoauth corp {\n authorize_url a b\n}\n", "wrong argument count"},
		"validate":       {"upstream testoauth corp {\n display_name C\n}\n", "authorize_url is required"},
		"oidc arg count": {"oidc g {\n issuer\n}\n", "wrong argument count"},
		"oidc flag arg":  {"oidc g {\n userinfo yes\n}\n", "wrong argument count"},
		"saml duration":  {"saml c {\n metadata_validity soon\n}\n", "metadata_validity: "},
	} {
		_, err := adapt(t, "{\n mcp_auth {\n  login {\n"+c.src+"  }\n }\n}\n")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "Caddyfile:") {
			t.Errorf("%s: err = %v, want %q with the file and line", name, err, c.want)
		}
	}
}

// Provider names are checked across every list, the generic one included.
func TestValidateUpstreamNames(t *testing.T) {
	a := &App{App: config.App{Issuer: "https://auth.example.com", SigningAlgorithm: "ES256"}}
	a.Login.OIDC = []OIDCProvider{{UpstreamButton: idp.UpstreamButton{Name: "corp"}}}
	a.Login.Upstreams = []UpstreamProvider{{Kind: testKindName, Options: &testKindOptions{Name: "corp"}}}
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "configured twice") {
		t.Fatalf("duplicate across kinds: %v", err)
	}
	a.Login.Upstreams[0].Options = &testKindOptions{Name: "Bad Name"}
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "provider name") {
		t.Fatalf("bad name: %v", err)
	}
	a.Login.Upstreams[0].Options = &testKindOptions{Name: "other"}
	a.Login.HomeRealm = map[string]string{"example.org": "other"}
	if err := a.Validate(); err != nil {
		t.Fatalf("home realm to a generic provider: %v", err)
	}
}

// The whole round trip of the third kind in a provisioned app: its button
// on the login page, Begin's redirect to the fake upstream, the callback
// completing through the Completer into a signed-in session and a linked
// account.
func TestThirdKindSignsIn(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/authorize" {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, r.URL.Query().Get("redirect_uri")+"?sub=carol-42", http.StatusSeeOther)
	}))
	t.Cleanup(upstream.Close)
	t.Setenv("MCPAUTH_TEST_UPSTREAM", upstream.URL)

	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	cfg := fmt.Sprintf(`{"issuer": %q, "storage": {"path": %q}, "login": {"upstreams": [
		{"kind": "testoauth", "name": "corp", "display_name": "Corp Upstream", "authorize_url": "{env.MCPAUTH_TEST_UPSTREAM}/authorize"}]}}`,
		srv.URL, filepath.Join(t.TempDir(), "mcpauth.db"))
	var app App
	if err := json.Unmarshal([]byte(cfg), &app); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := app.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Stop(); _ = app.Cleanup() })
	sh := &ServerHandler{app: &app}
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = sh.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			http.NotFound(w, r)
			return nil
		}))
	})

	jar, _ := cookiejar.New(nil)
	var hops []string
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		hops = append(hops, r.URL.String())
		return nil
	}}
	resp, err := client.Get(srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if !strings.Contains(page, "Corp Upstream") || !strings.Contains(page, `action="/login/corp"`) {
		t.Fatalf("the login page has no button for the third kind:\n%s", page)
	}
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the login page")
	}
	resp, err = client.PostForm(srv.URL+"/login/corp", url.Values{"csrf_token": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(hops) < 2 || !strings.HasPrefix(hops[0], upstream.URL+"/authorize?") || !strings.HasPrefix(hops[1], srv.URL+"/login/corp/callback?sub=carol-42") {
		t.Fatalf("redirects %v, want the fake upstream then our callback", hops)
	}
	acct, err := app.store.AccountByIdentity(context.Background(), "corp", "carol-42")
	if err != nil || acct.Email != "carol@upstream.example" {
		t.Fatalf("linked account %+v, %v", acct, err)
	}
	var session bool
	for _, c := range jar.Cookies(mustURL(t, srv.URL)) {
		session = session || strings.Contains(c.Name, "session")
	}
	if !session {
		t.Fatalf("no session cookie after the callback (final status %d, hops %v)", resp.StatusCode, hops)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// saml.Options.MetadataValidity moved from caddy.Duration to idp.Duration:
// both read and write the same JSON.
func TestIdpDurationIsCaddyDuration(t *testing.T) {
	for _, in := range []string{`"720h"`, `"30d"`, `"1.5d2h"`, `"-1d"`, `"90m"`, `2592000000000000`, `0`, `"soon"`, `"d"`, `"1x"`, `true`} {
		var c caddy.Duration
		var d idp.Duration
		cerr, derr := json.Unmarshal([]byte(in), &c), json.Unmarshal([]byte(in), &d)
		if (cerr == nil) != (derr == nil) || time.Duration(c) != time.Duration(d) {
			t.Errorf("%s: caddy %v (%v), idp %v (%v)", in, time.Duration(c), cerr, time.Duration(d), derr)
		}
		cb, _ := json.Marshal(c)
		db, _ := json.Marshal(d)
		if string(cb) != string(db) {
			t.Errorf("%s: caddy writes %s, idp %s", in, cb, db)
		}
	}
}
