package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"html"
	"html/template"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/samlidp"
	dsig "github.com/russellhaering/goxmldsig"
	"golang.org/x/oauth2"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

const (
	appClient   = "app"
	appRedirect = "http://127.0.0.1/callback"
	resourceURL = "https://mcp.example.com/mcp"
	idpUser     = "alice"
	idpPassword = "correct horse battery staple"
)

type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *clock) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d = d
}

// testIdP is a real SAML IdP (crewjam/saml/samlidp) on loopback.
type testIdP struct {
	srv  *httptest.Server
	s    *samlidp.Server
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// The stock login form posts to /login, which answers with JSON; this one
// posts the credentials with the request back to /sso, like a real IdP.
var idpLoginForm = template.Must(template.New("login").Parse(`<html><body><p>{{.Toast}}</p>` +
	`<form method="post" action="/sso"><input type="text" name="user"><input type="password" name="password">` +
	`<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}"><input type="hidden" name="RelayState" value="{{.RelayState}}">` +
	`<input type="submit" id="login" value="Log In"></form></body></html>`))

func selfSigned(t testing.TB, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// Keys are made once: RSA generation dominates the tests' run time.
var (
	keysOnce         sync.Once
	idpKey           *rsa.PrivateKey
	idpCert          *x509.Certificate
	spCertPEM, spKey []byte
)

func testKeys(t testing.TB) {
	keysOnce.Do(func() {
		idpKey, idpCert = selfSigned(t, "idp.test")
		blob, err := generateKeyPair("https://sp.test/", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(blob, []byte("-----BEGIN PRIVATE KEY"))
		spCertPEM, spKey = blob[:i], blob[i:]
	})
}

// newTestIdP starts the IdP; tlsOn serves it over https (the browser test).
func newTestIdP(t testing.TB, tlsOn bool) *testIdP {
	t.Helper()
	testKeys(t)
	ti := &testIdP{key: idpKey, cert: idpCert}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ti.s.ServeHTTP(w, r) })
	ti.srv = httptest.NewUnstartedServer(h)
	if tlsOn {
		ti.srv.StartTLS()
	} else {
		ti.srv.Start()
	}
	t.Cleanup(ti.srv.Close)
	u, _ := url.Parse(ti.srv.URL)
	s, err := samlidp.New(samlidp.Options{URL: *u, Key: ti.key, Certificate: ti.cert, Store: &samlidp.MemoryStore{},
		Logger: log.New(io.Discard, "", 0), LoginFormTemplate: idpLoginForm})
	if err != nil {
		t.Fatal(err)
	}
	ti.s = s
	pw := idpPassword
	ti.put(t, "/users/"+idpUser, mustJSON(samlidp.User{Name: idpUser, PlaintextPassword: &pw, Email: "alice@corp.example",
		CommonName: "Alice Corp", Groups: []string{"mcp-users", "staff"}}))
	return ti
}

func (ti *testIdP) put(t testing.TB, path string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, ti.srv.URL+path, bytes.NewReader(body))
	res, err := ti.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("idp PUT %s = %d", path, res.StatusCode)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// env is the whole stack: the IdP, and our server (hosted login +
// authorization server) with a real bbolt store.
type env struct {
	t     *testing.T
	store *bboltstore.Store
	srv   *httptest.Server
	idp   *testIdP
	login *idp.Login
	as    *authserver.Server
	prov  *Provider
	clk   *clock

	mu     sync.Mutex
	events []storage.AuditEvent
}

type envOpts struct {
	// plain registers our metadata without keys at the IdP: assertions are
	// not encrypted, so tests can tamper with them.
	plain bool
	// tlsIdP serves the IdP over https.
	tlsIdP bool
	// keyStore makes the provider generate and persist its SP key.
	keyStore bool
	// host replaces 127.0.0.1 in our public URL (the browser test uses
	// localhost: another site than the IdP's 127.0.0.1).
	host string
	cfg  func(*Config)
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{t: t, clk: &clock{}}
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	e.idp = newTestIdP(t, o.tlsIdP)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case e.login.Handles(r):
			e.login.ServeHTTP(w, r)
		case e.as.Handles(r):
			e.as.ServeHTTP(w, r)
		case r.URL.Path == "/whoami":
			id, ok := e.login.Identify(r)
			if !ok {
				http.Error(w, "nobody", http.StatusUnauthorized)
				return
			}
			_ = json.NewEncoder(w).Encode(id)
		default:
			http.NotFound(w, r)
		}
	})
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	public := e.srv.URL
	if o.host != "" {
		public = strings.Replace(public, "127.0.0.1", o.host, 1)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{
		UpstreamConfig: idp.UpstreamConfig{Name: "corp", DisplayName: "Corp SAML"},
		BaseURL:        idp.ProviderBaseURL(public, "", "corp"),
		IdPMetadataURL: e.idp.srv.URL + "/metadata",
		Store:          st,
		HTTPClient:     e.idp.srv.Client(),
		Now:            e.clk.Now,
		Logger:         logger,
	}
	if o.keyStore {
		cfg.KeyStore = DirKeyStore(t.TempDir())
	} else {
		cfg.SPCertificatePEM, cfg.SPKeyPEM = spCertPEM, spKey
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	e.prov, err = New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.login, err = idp.New(context.Background(), idp.Config{
		PublicURL: public,
		Store:     st,
		Providers: []idp.Provider{e.prov},
		Logger:    logger,
		OnEvent: func(ev storage.AuditEvent) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.events = append(e.events, ev)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.as, err = authserver.New(context.Background(), authserver.Config{
		Issuer:    public,
		Store:     st,
		Browser:   e.login,
		Scopes:    []string{"mcp:tools"},
		Resources: authserver.ResourcePolicy{Enabled: true, Known: []string{resourceURL}},
		Clients: []storage.Client{{ID: appClient, Name: "App", RedirectURIs: []string{appRedirect}, SkipConsent: true,
			TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code", "refresh_token"}}},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.as.Close() })
	// Register our SP metadata, as served on our metadata route, at the IdP.
	b := e.browser()
	md := b.get(e.srv.URL + "/login/corp/metadata")
	if md.status != http.StatusOK {
		t.Fatalf("metadata = %d", md.status)
	}
	body := []byte(md.body)
	if o.plain {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(md.body); err != nil {
			t.Fatal(err)
		}
		for _, kd := range doc.FindElements("//KeyDescriptor") {
			kd.Parent().RemoveChild(kd)
		}
		body, _ = doc.WriteToBytes()
	}
	e.idp.put(t, "/services/sp", body)
	return e
}

func (e *env) failures() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		if ev.Type == "login.failure" {
			out = append(out, ev.Detail["reason"])
		}
	}
	return out
}

func (e *env) successes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Type == "login.success" {
			n++
		}
	}
	return n
}

// browser keeps cookies, trusts both test TLS servers and does not follow
// redirects.
type browser struct {
	t *testing.T
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	if e.idp.srv.TLS != nil {
		pool.AddCert(e.idp.srv.Certificate())
	}
	c := &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &browser{t: e.t, c: c}
}

type resp struct {
	status   int
	body     string
	location string
	cookies  []*http.Cookie
	header   http.Header
}

func (b *browser) do(method, u string, form url.Values) resp {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	loc := res.Header.Get("Location")
	if loc != "" {
		if lu, err := req.URL.Parse(loc); err == nil {
			loc = lu.String()
		}
	}
	return resp{status: res.StatusCode, body: string(data), location: loc, cookies: res.Cookies(), header: res.Header}
}

func (b *browser) get(u string) resp { return b.do(http.MethodGet, u, nil) }

var (
	csrfRE     = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	returnToRE = regexp.MustCompile(`name="return_to" value="([^"]*)"`)
	inputRE    = regexp.MustCompile(`name="(SAMLRequest|SAMLResponse|RelayState)" value="([^"]*)"`)
	actionRE   = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
)

func (e *env) authorizeURL(verifier string) string {
	return e.srv.URL + "/authorize?" + url.Values{
		"response_type":         {"code"},
		"client_id":             {appClient},
		"redirect_uri":          {appRedirect},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
		"state":                 {"client-state-123"},
		"scope":                 {"mcp:tools"},
		"resource":              {resourceURL},
	}.Encode()
}

// start opens a client's authorization request and clicks the provider
// button; it returns our answer (a redirect or a POST form to the IdP).
func (e *env) start(b *browser, verifier string) resp {
	e.t.Helper()
	page := b.get(e.authorizeURL(verifier))
	csrf := csrfRE.FindStringSubmatch(page.body)
	rt := returnToRE.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || csrf == nil || rt == nil || !strings.Contains(page.body, `action="/login/corp"`) {
		e.t.Fatalf("login page %d without the provider button:\n%s", page.status, page.body)
	}
	return b.do(http.MethodPost, e.srv.URL+"/login/corp", url.Values{"csrf_token": {csrf[1]}, "return_to": {html.UnescapeString(rt[1])}})
}

// formOf returns a page's form action and SAML fields.
func formOf(t *testing.T, body string) (string, url.Values) {
	t.Helper()
	a := actionRE.FindStringSubmatch(body)
	if a == nil {
		t.Fatalf("no form in:\n%s", body)
	}
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return html.UnescapeString(a[1]), v
}

// atIdP signs in at the IdP with our request and returns the IdP's
// response form (the SAMLResponse to post to our ACS).
func (e *env) atIdP(b *browser, start resp) (string, url.Values) {
	e.t.Helper()
	var samlRequest, relay string
	switch start.status {
	case http.StatusSeeOther: // HTTP-Redirect binding
		if !strings.HasPrefix(start.location, e.idp.srv.URL+"/sso?") {
			e.t.Fatalf("redirect to %q", start.location)
		}
		login := b.get(start.location)
		if login.status != http.StatusOK {
			e.t.Fatalf("idp sso = %d %s", login.status, login.body)
		}
		_, f := formOf(e.t, login.body)
		samlRequest, relay = f.Get("SAMLRequest"), f.Get("RelayState")
	case http.StatusOK: // HTTP-POST binding
		action, f := formOf(e.t, start.body)
		if action != e.idp.srv.URL+"/sso" {
			e.t.Fatalf("post form to %q", action)
		}
		samlRequest, relay = f.Get("SAMLRequest"), f.Get("RelayState")
	default:
		e.t.Fatalf("provider start = %d %q\n%s", start.status, start.location, start.body)
	}
	r := b.do(http.MethodPost, e.idp.srv.URL+"/sso", url.Values{"user": {idpUser}, "password": {idpPassword}, "SAMLRequest": {samlRequest}, "RelayState": {relay}})
	if r.status != http.StatusOK {
		e.t.Fatalf("idp login = %d %s", r.status, r.body)
	}
	action, f := formOf(e.t, r.body)
	if action != e.prov.ACSURL() || f.Get("SAMLResponse") == "" {
		e.t.Fatalf("idp answer posts to %q", action)
	}
	return action, f
}

// finish posts the response to our ACS and follows our redirects to the
// client, exchanges the code and checks the token at the resource guard.
func (e *env) finish(b *browser, acs string, form url.Values, verifier string) *resourceguard.Principal {
	e.t.Helper()
	r := b.do(http.MethodPost, acs, form)
	for i := 0; i < 5 && r.status/100 == 3 && !strings.HasPrefix(r.location, appRedirect); i++ {
		r = b.get(r.location)
	}
	if !strings.HasPrefix(r.location, appRedirect+"?") {
		e.t.Fatalf("did not reach the client: %d %q\n%s", r.status, r.location, r.body)
	}
	cu, _ := url.Parse(r.location)
	tok := b.do(http.MethodPost, e.srv.URL+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {cu.Query().Get("code")}, "redirect_uri": {appRedirect},
		"client_id": {appClient}, "code_verifier": {verifier}, "resource": {resourceURL},
	})
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if tok.status != http.StatusOK || json.Unmarshal([]byte(tok.body), &tr) != nil || tr.AccessToken == "" {
		e.t.Fatalf("token = %d %s", tok.status, tok.body)
	}
	g, err := resourceguard.New(resourceguard.Config{Resource: resourceURL, Issuer: e.srv.URL, Keys: e.as.Keys(), RequireTyp: true, Scopes: []string{"mcp:tools"}})
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, resourceURL, nil)
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	p, ch := g.Check(req)
	if ch != nil {
		e.t.Fatalf("guard refused the access token: %+v", ch)
	}
	return p
}

func (b *browser) whoami(e *env) (authserver.Identity, bool) {
	r := b.get(e.srv.URL + "/whoami")
	if r.status != http.StatusOK {
		return authserver.Identity{}, false
	}
	var id authserver.Identity
	if err := json.Unmarshal([]byte(r.body), &id); err != nil {
		e.t.Fatal(err)
	}
	return id, true
}

func hasSessionCookie(cs []*http.Cookie) bool {
	for _, c := range cs {
		if c.Name == idp.SessionCookie && c.MaxAge >= 0 && c.Value != "" {
			return true
		}
	}
	return false
}

// signer signs elements as the IdP does (crewjam's settings), with key.
func signer(t *testing.T, key *rsa.PrivateKey, cert *x509.Certificate) *dsig.SigningContext {
	t.Helper()
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{PrivateKey: key, Certificate: [][]byte{cert.Raw}}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	return ctx
}
