package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// Test fixtures shared by the flow tests.
const (
	testResource      = "https://mcp.example.com/mcp"
	testResource2     = "https://tools.example.com/mcp"
	testClientAud     = "https://aud.example.com/api"
	testVerifier      = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	testOtherVerifier = "Xk7uhbUJU1p1r_wW1gFWFOEjXkdBjftJeZ4CVP-mB92K2"
	testSecret        = "s3cret-s3cret-s3cret-s3cret"
	testCIMDClient    = "https://client.example.com/oauth/metadata.json"
)

func s256(v string) string {
	h := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testBrowser implements Browser for tests: a request carrying the cookie
// test_user=<subject> is signed in as that user (AuthTime from authTimes, or
// the clock's start); pages are answered with headers the tests read.
type testBrowser struct {
	mu         sync.Mutex
	authTime   time.Time
	logins     []LoginRequest
	consents   []ConsentPage
	errorsSeen []string
}

func (b *testBrowser) Identify(r *http.Request) (Identity, bool) {
	c, err := r.Cookie("test_user")
	if err != nil || c.Value == "" {
		return Identity{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return Identity{Subject: c.Value, Email: c.Value + "@example.com", AuthTime: b.authTime, Method: "password",
		MustVerifyEmail: strings.HasPrefix(c.Value, "unverified")}, true
}

func (b *testBrowser) VerifyEmail(w http.ResponseWriter, r *http.Request, req LoginRequest) {
	w.Header().Set("X-Test-Page", "verify_email")
	w.Header().Set("X-Test-Return", req.ReturnTo)
	w.WriteHeader(http.StatusOK)
}

func (b *testBrowser) Login(w http.ResponseWriter, r *http.Request, req LoginRequest) {
	b.mu.Lock()
	b.logins = append(b.logins, req)
	b.mu.Unlock()
	w.Header().Set("X-Test-Page", "login")
	w.Header().Set("X-Test-Return", req.ReturnTo)
	if req.ForceLogin {
		w.Header().Set("X-Test-Force", "1")
	}
	w.WriteHeader(http.StatusOK)
}

func (b *testBrowser) Consent(w http.ResponseWriter, r *http.Request, page ConsentPage) {
	b.mu.Lock()
	b.consents = append(b.consents, page)
	b.mu.Unlock()
	w.Header().Set("X-Test-Page", "consent")
	w.Header().Set("X-Test-Action", page.Action)
	w.WriteHeader(http.StatusOK)
}

func (b *testBrowser) VerifyCSRF(r *http.Request) error {
	id, ok := b.Identify(r)
	if !ok || r.PostFormValue("csrf") != "csrf-"+id.Subject {
		return errors.New("test: bad csrf")
	}
	return nil
}

func (b *testBrowser) Error(w http.ResponseWriter, r *http.Request, status int, code, description string) {
	b.mu.Lock()
	b.errorsSeen = append(b.errorsSeen, code)
	b.mu.Unlock()
	w.Header().Set("X-Test-Page", "error")
	w.Header().Set("X-Test-Error", code)
	w.Header().Set("X-Test-Description", description)
	w.WriteHeader(status)
}

func (b *testBrowser) lastConsent() ConsentPage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.consents[len(b.consents)-1]
}

// testResolver resolves CIMD client ids from a map.
type testResolver struct {
	mu      sync.Mutex
	clients map[string]storage.Client
}

func (r *testResolver) ResolveClient(_ context.Context, id string) (storage.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.clients[id]
	if !ok {
		return storage.Client{}, errors.New("test: no such document")
	}
	return c, nil
}

type harness struct {
	t        testing.TB
	store    *bboltstore.Store
	srv      *Server
	browser  *testBrowser
	clock    *testClock
	resolver *testResolver
	ts       *httptest.Server
	issuer   string
}

func testClients(tb testing.TB) []storage.Client {
	hash, err := HashClientSecret(testSecret)
	if err != nil {
		tb.Fatal(err)
	}
	return []storage.Client{
		{ID: "app", Name: "App", RedirectURIs: []string{"http://127.0.0.1/callback", "https://app.example.com/cb?tenant=1", "cursor://anysphere.cursor-mcp/oauth/callback"}, SkipConsent: true},
		{ID: "app2", Name: "Second app", RedirectURIs: []string{"https://app2.example.com/cb"}, SkipConsent: true},
		{ID: "asks", Name: "Asks consent", RedirectURIs: []string{"https://asks.example.com/cb"}},
		{ID: "conf", Name: "Confidential", RedirectURIs: []string{"https://conf.example.com/cb"}, SecretHash: hash, SkipConsent: true},
		{ID: "norefresh", Name: "No refresh", RedirectURIs: []string{"https://norefresh.example.com/cb"}, GrantTypes: []string{oauth.GrantAuthorizationCode}, SkipConsent: true},
		{ID: "narrow", Name: "Narrow", RedirectURIs: []string{"https://narrow.example.com/cb"}, Scopes: []string{"read"}, DefaultScopes: []string{"read"}, SkipConsent: true},
		{ID: "aud", Name: "Has audience", RedirectURIs: []string{"https://aud.example.com/cb"}, DefaultAudience: testClientAud, SkipConsent: true},
		{ID: "shortlived", Name: "Short", RedirectURIs: []string{"https://short.example.com/cb"}, AccessTokenTTL: 5 * time.Minute, SkipConsent: true},
	}
}

// newHarness starts a server on a real listener with a real bbolt store.
func newHarness(tb testing.TB, mod ...func(*Config)) *harness {
	tb.Helper()
	return newHarnessSync(tb, false, mod...)
}

// newHarnessSync is newHarness with a choice of fsync on commit (benchmarks
// measure with it; tests skip it for speed).
func newHarnessSync(tb testing.TB, fsync bool, mod ...func(*Config)) *harness {
	tb.Helper()
	st, err := bboltstore.Open(filepath.Join(tb.TempDir(), "db"), bboltstore.Options{NoSync: !fsync})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{t: tb, store: st, clock: &testClock{t: time.Now().Truncate(time.Second)}, resolver: &testResolver{clients: map[string]storage.Client{}}}
	h.browser = &testBrowser{authTime: h.clock.Now()}
	h.issuer = "http://" + ln.Addr().String()
	// A DCR client lives in the store like any registered client.
	dcr := storage.Client{ID: "dcr-1", Kind: storage.ClientDCR, Name: "Registered", RedirectURIs: []string{"http://localhost/cb"},
		TokenEndpointAuthMethod: oauth.AuthMethodNone, GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}, CreatedAt: h.clock.Now()}
	dcr.Fingerprint = oauth.Fingerprint(dcr)
	if err := st.PutClient(context.Background(), dcr); err != nil {
		tb.Fatal(err)
	}
	cimd := storage.Client{ID: testCIMDClient, Kind: storage.ClientCIMD, Name: "Metadata client", RedirectURIs: []string{"https://client.example.com/cb"},
		TokenEndpointAuthMethod: oauth.AuthMethodNone}
	cimd.Fingerprint = oauth.Fingerprint(cimd)
	h.resolver.clients[cimd.ID] = cimd
	cfg := Config{
		Issuer:        h.issuer,
		Store:         st,
		Browser:       h.browser,
		Scopes:        []string{"read", "write"},
		DefaultScopes: []string{"read"},
		Resources: ResourcePolicy{Enabled: true, ClientAudienceFallback: true, EnforceOnTokenExchange: true, KeepBindingOnRefresh: true,
			Known: []string{testResource}},
		Clients:        testClients(tb),
		ClientResolver: h.resolver,
		Now:            h.clock.Now,
	}
	for _, m := range mod {
		m(&cfg)
	}
	h.srv, err = New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	h.ts = httptest.NewUnstartedServer(h.srv)
	h.ts.Listener.Close()
	h.ts.Listener = ln
	h.ts.Start()
	tb.Cleanup(func() {
		h.ts.Close()
		h.srv.Close()
		st.Close()
	})
	return h
}

// serve runs a request through the handler in process.
func (h *harness) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.srv.ServeHTTP(w, r)
	return w
}

func (h *harness) authzQuery(clientID, redirect string) url.Values {
	return url.Values{
		"client_id":             {clientID},
		"redirect_uri":          {redirect},
		"response_type":         {"code"},
		"state":                 {"st-123"},
		"code_challenge":        {s256(testVerifier)},
		"code_challenge_method": {"S256"},
		"resource":              {testResource},
	}
}

// authorize sends GET /authorize?q, signed in as user ("" = not signed in).
func (h *harness) authorize(q url.Values, user string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, h.issuer+"/authorize?"+q.Encode(), nil)
	if user != "" {
		r.AddCookie(&http.Cookie{Name: "test_user", Value: user})
	}
	return h.serve(r)
}

// consentPost posts the consent form for q.
func (h *harness) consentPost(q url.Values, user string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, h.issuer+"/authorize?"+q.Encode(), strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		r.AddCookie(&http.Cookie{Name: "test_user", Value: user})
	}
	return h.serve(r)
}

// codeFrom extracts the code of a successful authorization response.
func (h *harness) codeFrom(w *httptest.ResponseRecorder) string {
	h.t.Helper()
	if w.Code != http.StatusSeeOther {
		h.t.Fatalf("authorize: status %d (page %q, error %q), want 303", w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Error"))
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		h.t.Fatal(err)
	}
	if e := u.Query().Get("error"); e != "" {
		h.t.Fatalf("authorize: error %s: %s", e, u.Query().Get("error_description"))
	}
	return u.Query().Get("code")
}

// code runs an authorization for clientID (a client that skips consent).
func (h *harness) code(clientID, redirect string, mod ...func(url.Values)) string {
	h.t.Helper()
	q := h.authzQuery(clientID, redirect)
	for _, m := range mod {
		m(q)
	}
	return h.codeFrom(h.authorize(q, "alice"))
}

func (h *harness) exchangeForm(clientID, code, redirect, verifier string) url.Values {
	f := url.Values{"grant_type": {oauth.GrantAuthorizationCode}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
	if clientID != "" {
		f.Set("client_id", clientID)
	}
	return f
}

// token posts form to /token in process.
func (h *harness) token(form url.Values, mod ...func(*http.Request)) *httptest.ResponseRecorder {
	return h.post("/token", form.Encode(), mod...)
}

func (h *harness) post(path, body string, mod ...func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, h.issuer+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, m := range mod {
		m(r)
	}
	return h.serve(r)
}

type tokenJSON struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func decodeToken(tb testing.TB, w *httptest.ResponseRecorder) tokenJSON {
	tb.Helper()
	var t tokenJSON
	if err := json.Unmarshal(w.Body.Bytes(), &t); err != nil {
		tb.Fatalf("token response %d %q: %v", w.Code, w.Body.String(), err)
	}
	return t
}

// mustToken exchanges and fails the test on error.
func (h *harness) mustToken(form url.Values) tokenJSON {
	h.t.Helper()
	w := h.token(form)
	t := decodeToken(h.t, w)
	if w.Code != http.StatusOK {
		h.t.Fatalf("token: %d %s: %s", w.Code, t.Error, t.Description)
	}
	return t
}

// claims decodes a JWT payload after checking it was signed by our keys.
func (h *harness) claims(at string) map[string]any {
	h.t.Helper()
	if _, ok, err := h.srv.verifyOwnAccessToken(context.Background(), at); !ok || err != nil {
		h.t.Fatalf("access token not verified by our keys: %v", err)
	}
	parts := strings.Split(at, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		h.t.Fatal(err)
	}
	return m
}

// grants lists every grant in the store.
func (h *harness) grants() []storage.Grant {
	h.t.Helper()
	gs, err := h.store.ListGrants(context.Background(), "", "")
	if err != nil {
		h.t.Fatal(err)
	}
	return gs
}

func (h *harness) activeGrants() int {
	n := 0
	for _, g := range h.grants() {
		if !g.Revoked() {
			n++
		}
	}
	return n
}

// audit returns the audit events of a type (after flushing the writer).
func (h *harness) audit(typ string) []storage.AuditEvent {
	h.t.Helper()
	h.srv.audit.Flush()
	evs, err := h.store.ListAudit(context.Background(), storage.AuditQuery{Type: typ, Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// oauthError reads the error of a JSON response.
func oauthError(tb testing.TB, w *httptest.ResponseRecorder) string {
	tb.Helper()
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return e.Error
}

// redirectParams parses a 303's Location and returns its raw query values.
func redirectParams(tb testing.TB, w *httptest.ResponseRecorder) (*url.URL, url.Values) {
	tb.Helper()
	if w.Code != http.StatusSeeOther {
		tb.Fatalf("status %d (page %q error %q), want 303", w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Error"))
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		tb.Fatal(err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		tb.Fatal(err)
	}
	return u, q
}
