package authserver

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"golang.org/x/time/rate"
)

// Every reason of the closed set has plain words, and the words say what
// to do (a ";" separates what went wrong from the advice).
func TestEveryReasonHasText(t *testing.T) {
	if len(oauth.Reasons()) < 30 {
		t.Fatalf("only %d reasons", len(oauth.Reasons()))
	}
	for _, r := range oauth.Reasons() {
		if r == "" || strings.TrimSpace(r.Text()) == "" || !strings.Contains(r.Text(), "; ") {
			t.Errorf("reason %q: text %q", r, r.Text())
		}
		if sanitizeErrorText(r.Text()) != r.Text() {
			t.Errorf("reason %q: text is not valid error_description text", r)
		}
	}
	if oauth.Reason("made_up").Known() || oauth.Reason("made_up").Text() != "" {
		t.Fatal("a reason outside the set is known")
	}
}

// cimdDocServer serves metadata documents over TLS under example.com
// (in httptest's certificate), which the fetcher's resolver maps to
// 127.0.0.1: /big.json is too large, /bad.json is not a valid document,
// anything else is a 404.
func cimdDocServer(t *testing.T) (port string, fetcherCfg cimd.FetcherConfig) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big.json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"client_name":"` + strings.Repeat("x", 8000) + `"}`))
		case "/bad.json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"client_id":"https://elsewhere.example/x.json","client_name":"x","redirect_uris":["https://x.example/cb"]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return port, cimd.FetcherConfig{AllowLoopback: true, ExtraCAs: pool, PerRequesterBurst: 1000, PerRequesterRate: 1000,
		PerHostBurst: 1000, PerHostRate: 1000, PerDomainBurst: 1000, PerDomainRate: 1000,
		LookupIP: func(_ context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "example.com":
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			case "private.test":
				return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}}
}

func withCIMDFetcher(t *testing.T, fc cimd.FetcherConfig) func(*Config) {
	return func(c *Config) {
		f, err := cimd.NewFetcher(fc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		r, err := cimd.NewResolver(cimd.ResolverConfig{Fetcher: f, Policy: cimd.PolicyAny})
		if err != nil {
			t.Fatal(err)
		}
		c.ClientResolver = r
	}
}

// refusalRecord flushes the refusal aggregator and returns the aggregated
// audit record of typ with the reason, read back from the bbolt store.
func refusalRecord(t *testing.T, h *harness, typ string, reason oauth.Reason) (storage.AuditEvent, bool) {
	t.Helper()
	if err := h.srv.refusals.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	evs, err := h.store.ListAudit(context.Background(), storage.AuditQuery{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Detail["reason"] == string(reason) {
			return ev, true
		}
	}
	return storage.AuditEvent{}, false
}

// Every refusal at /authorize and /token, CIMD resolution included,
// answers the right error with the reason's plain words, and is audited
// (aggregated: a count, a source prefix) with a reason from the closed set.
func TestRefusalReasons(t *testing.T) {
	port, fc := cimdDocServer(t)
	h := newHarness(t, withCIMDFetcher(t, fc))
	cimdID := func(path string) string { return "https://example.com:" + port + path }

	// Material for the /token cases.
	code := h.code("app", "http://127.0.0.1/callback")
	h.mustToken(h.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier))
	used := code
	code2 := h.code("app", "http://127.0.0.1/callback")

	type tc struct {
		name     string
		do       func() *httptest.ResponseRecorder
		typ      string // audit type
		code     string // OAuth error
		reason   oauth.Reason
		contains string // in error_description / the page text
	}
	az := func(mod func(url.Values)) func() *httptest.ResponseRecorder {
		return func() *httptest.ResponseRecorder {
			q := h.authzQuery("app", "http://127.0.0.1/callback")
			mod(q)
			return h.authorize(q, "")
		}
	}
	tok := func(form url.Values, mod ...func(*http.Request)) func() *httptest.ResponseRecorder {
		return func() *httptest.ResponseRecorder { return h.token(form, mod...) }
	}
	cases := []tc{
		{"authorize no client_id", az(func(q url.Values) { q.Del("client_id") }), "authorize.refused", oauth.CodeInvalidRequest, oauth.ReasonClientIDMissing, "client_id"},
		{"authorize unknown client", az(func(q url.Values) { q.Set("client_id", "nope") }), "authorize.refused", oauth.CodeInvalidClient, oauth.ReasonClientUnknown, "not registered"},
		{"authorize redirect mismatch", az(func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }), "authorize.refused", oauth.CodeInvalidRequest, oauth.ReasonRedirectURIMismatch, "not one registered"},
		{"authorize cimd too large", az(func(q url.Values) { q.Set("client_id", cimdID("/big.json")) }), "authorize.refused", oauth.CodeInvalidClient, oauth.ReasonCIMDDocumentTooLarge, "larger than"},
		{"authorize cimd invalid", az(func(q url.Values) { q.Set("client_id", cimdID("/bad.json")) }), "authorize.refused", oauth.CodeInvalidClient, oauth.ReasonCIMDDocumentInvalid, "client_id does not match"},
		{"authorize cimd 404", az(func(q url.Values) { q.Set("client_id", cimdID("/missing.json")) }), "authorize.refused", oauth.CodeInvalidClient, oauth.ReasonCIMDFetchFailed, "status 404"},
		{"authorize cimd private address", az(func(q url.Values) { q.Set("client_id", "https://private.test/c.json") }), "authorize.refused", oauth.CodeInvalidClient, oauth.ReasonCIMDAddressForbidden, "private or special address"},
		{"authorize no pkce", az(func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }), "authorize.refused", oauth.CodeInvalidRequest, oauth.ReasonPKCEMissing, "code_challenge"},
		{"authorize plain pkce", az(func(q url.Values) { q.Set("code_challenge_method", "plain") }), "authorize.refused", oauth.CodeInvalidRequest, oauth.ReasonPKCEInvalid, "S256"},
		{"authorize unknown scope", az(func(q url.Values) { q.Set("scope", "admin") }), "authorize.refused", oauth.CodeInvalidScope, oauth.ReasonScopeInvalid, "not allowed"},
		{"authorize unknown resource", az(func(q url.Values) { q.Set("resource", "https://other.example/mcp") }), "authorize.refused", oauth.CodeInvalidTarget, oauth.ReasonResourceUnknown, "not served"},
		{"authorize prompt none", az(func(q url.Values) { q.Set("prompt", "none") }), "authorize.refused", oauth.CodeLoginRequired, oauth.ReasonLoginRequired, "not signed in"},
		{"authorize response_type", az(func(q url.Values) { q.Set("response_type", "token") }), "authorize.refused", oauth.CodeUnsupportedResponseType, oauth.ReasonResponseTypeInvalid, "response_type=code"},

		{"token unknown client", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {"nope"}}), "token.refused", oauth.CodeInvalidClient, oauth.ReasonClientUnknown, "not registered"},
		{"token no client", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}}), "token.refused", oauth.CodeInvalidClient, oauth.ReasonClientIDMissing, "client authentication required"},
		{"token secret for a public client", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {"app"}, "client_secret": {"guess-guess-guess"}}), "token.refused", oauth.CodeInvalidClient, oauth.ReasonAuthMethodRefused, "does not accept"},
		{"token no secret for a confidential client", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {"conf"}}), "token.refused", oauth.CodeInvalidClient, oauth.ReasonAuthMethodRefused, "does not accept"},
		{"token wrong secret", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {"conf"}, "client_secret": {"wrong-wrong-wrong-wrong"}}), "token.refused", oauth.CodeInvalidClient, oauth.ReasonClientAuthFailed, "authentication failed"},
		{"token cimd too large", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {cimdID("/big.json")}}), "token.refused", oauth.CodeInvalidClient, oauth.ReasonCIMDDocumentTooLarge, "larger than"},
		{"token cimd invalid", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {cimdID("/bad.json")}}), "token.refused", oauth.CodeInvalidClient, oauth.ReasonCIMDDocumentInvalid, "not valid"},
		{"token grant type", tok(url.Values{"grant_type": {"password"}, "client_id": {"app"}}), "token.refused", oauth.CodeUnsupportedGrantType, oauth.ReasonGrantTypeUnsupported, "not supported"},
		{"token grant not allowed", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {"norefresh"}}), "token.refused", oauth.CodeUnauthorizedClient, oauth.ReasonGrantTypeNotAllowed, "may not use"},
		{"token unknown code", tok(h.exchangeForm("app", "no-such-code", "http://127.0.0.1/callback", testVerifier)), "token.refused", oauth.CodeInvalidGrant, oauth.ReasonCodeInvalid, "invalid"},
		{"token no verifier", tok(h.exchangeForm("app", code2, "http://127.0.0.1/callback", "")), "token.refused", oauth.CodeInvalidRequest, oauth.ReasonPKCEMissing, "code_verifier"},
		{"token code reused", tok(h.exchangeForm("app", used, "http://127.0.0.1/callback", testVerifier)), "token.refused", oauth.CodeInvalidGrant, oauth.ReasonCodeReused, "already used"},
		{"token pkce mismatch", tok(h.exchangeForm("app", code2, "http://127.0.0.1/callback", testOtherVerifier)), "token.refused", oauth.CodeInvalidGrant, oauth.ReasonPKCEMismatch, "does not match"},
		{"token refresh invalid", tok(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"rt-unknown"}, "client_id": {"app"}}), "token.refused", oauth.CodeInvalidGrant, oauth.ReasonRefreshInvalid, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.reason.Known() {
				t.Fatalf("reason %q is not in the closed set", c.reason)
			}
			w := c.do()
			var gotCode, desc string
			switch {
			case w.Header().Get("X-Test-Page") == "error":
				gotCode, desc = w.Header().Get("X-Test-Error"), w.Header().Get("X-Test-Description")
			case w.Code == http.StatusSeeOther:
				_, q := redirectParams(t, w)
				gotCode, desc = q.Get("error"), q.Get("error_description")
			default:
				j := decodeToken(t, w)
				gotCode, desc = j.Error, j.Description
			}
			if gotCode != c.code || !strings.Contains(desc, c.contains) {
				t.Fatalf("%d error %q description %q, want %q containing %q", w.Code, gotCode, desc, c.code, c.contains)
			}
			if strings.HasPrefix(string(c.reason), "cimd_") && strings.Contains(desc, "not registered") {
				t.Fatalf("a CIMD failure described as an unregistered client: %q", desc)
			}
			ev, ok := refusalRecord(t, h, c.typ, c.reason)
			if !ok {
				t.Fatalf("no %s audit record with reason %s", c.typ, c.reason)
			}
			if ev.Outcome != c.code || ev.Detail[abuse.DetailCount] == "" || !strings.HasSuffix(ev.IP, "/24") {
				t.Fatalf("audit record %+v: want outcome %s, aggregated by /24", ev, c.code)
			}
		})
	}

	// Every stored refusal record carries a reason of the closed set.
	for _, typ := range []string{"authorize.refused", "token.refused"} {
		evs, err := h.store.ListAudit(context.Background(), storage.AuditQuery{Type: typ, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if !oauth.Reason(ev.Detail["reason"]).Known() {
				t.Errorf("%s record with reason %q outside the set", typ, ev.Detail["reason"])
			}
		}
	}
}

// A flood of refusals is one aggregated record, not one per request.
func TestRefusalFloodAggregated(t *testing.T) {
	h := newHarness(t)
	for range 300 {
		h.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {"nope"}})
	}
	if err := h.srv.refusals.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	evs, err := h.store.ListAudit(context.Background(), storage.AuditQuery{Type: "token.refused", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Detail[abuse.DetailCount] != "300" || evs[0].Detail["reason"] != string(oauth.ReasonClientUnknown) {
		t.Fatalf("records %+v", evs)
	}
}

// A CIMD fetch refused by the per-host budget is 503 with Retry-After and
// says so (never "not registered"), audited as cimd_fetch_rate_limited.
func TestRefusalCIMDRateLimited(t *testing.T) {
	port, fc := cimdDocServer(t)
	fc.PerHostRate, fc.PerHostBurst = 0.0001, 1
	h := newHarness(t, withCIMDFetcher(t, fc))
	h.authorize(h.authzQuery("https://example.com:"+port+"/a.json", "https://client.example.com/cb"), "")
	w := h.authorize(h.authzQuery("https://example.com:"+port+"/b.json", "https://client.example.com/cb"), "")
	desc := w.Header().Get("X-Test-Description")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("X-Test-Error") != oauth.CodeTemporarilyUnavailable ||
		!strings.Contains(desc, "too many metadata documents") {
		t.Fatalf("%d %q %q", w.Code, w.Header().Get("X-Test-Error"), desc)
	}
	checkRetryAfter(t, w.Header())
	if _, ok := refusalRecord(t, h, "authorize.refused", oauth.ReasonCIMDFetchRateLimited); !ok {
		t.Fatal("no audit record")
	}
}

// Registration refusals: the reason is in the aggregated audit record.
func TestRefusalReasonsRegister(t *testing.T) {
	e := newRegEnv(t, func(c *RegistrationConfig) { c.RatePerIP, c.BurstPerIP = rate.Every(time.Hour), 3 })
	cases := []struct {
		ct, body, code string
		reason         oauth.Reason
	}{
		{"text/plain", "x", oauth.CodeInvalidClientMetadata, oauth.ReasonRegistrationInvalid},
		{"application/json", `{"client_name":"x","redirect_uris":["http://evil.example/cb"]}`, oauth.CodeInvalidRedirectURI, oauth.ReasonRegistrationRedirect},
		{"application/json", validRegistration, "", ""}, // the third: allowed
		{"application/json", validRegistration, oauth.CodeTemporarilyUnavailable, oauth.ReasonRegistrationRateLimit},
	}
	for i, c := range cases {
		w := e.register("198.51.100.7", c.ct, c.body)
		if c.code == "" {
			continue
		}
		if got := oauthError(t, w); got != c.code {
			t.Fatalf("case %d: %d %s, want %s", i, w.Code, w.Body, c.code)
		}
	}
	if err := e.agg.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditQuery{Type: "client.register_refused", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, ev := range evs {
		if !oauth.Reason(ev.Detail["reason"]).Known() {
			t.Errorf("record %+v: reason outside the set", ev)
		}
		got[ev.Detail["reason"]] = true
	}
	for _, c := range cases {
		if c.reason != "" && !got[string(c.reason)] {
			t.Errorf("no record with reason %s in %v", c.reason, got)
		}
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A refusal is logged exactly once, at info, with its reason and client
// id, and the log never holds the secret, code or refresh token sent.
func TestRefusalLoggedOnceWithoutSecrets(t *testing.T) {
	var buf syncBuffer
	h := newHarness(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	const secret, refresh = "wrong-secret-1234567890", "rt-secret-value-0987654321"
	h.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {refresh}, "client_id": {"conf"}, "client_secret": {secret}})
	code := h.code("app", "http://127.0.0.1/callback")
	h.token(h.exchangeForm("app", code, "http://127.0.0.1/callback", testOtherVerifier))
	out := buf.String()
	for _, s := range []string{secret, refresh, code, testOtherVerifier} {
		if strings.Contains(out, s) {
			t.Fatalf("the log holds a credential %q:\n%s", s, out)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["msg"] == "authserver: refused" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 || lines[0]["reason"] != string(oauth.ReasonClientAuthFailed) || lines[0]["client_id"] != "conf" ||
		lines[1]["reason"] != string(oauth.ReasonPKCEMismatch) || lines[1]["client_id"] != "app" || lines[0]["level"] != "INFO" {
		t.Fatalf("refusal log lines %v", lines)
	}
}
