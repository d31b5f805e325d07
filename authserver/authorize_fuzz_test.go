package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// FuzzAuthorizeRequest throws hostile queries at /authorize, signed in and
// not: it never panics, never answers 5xx, and never redirects anywhere but
// to a redirect URI registered for the client named in the query (a bad
// client_id or redirect_uri is never redirected to).
func FuzzAuthorizeRequest(f *testing.F) {
	h := newHarness(f)
	good := h.authzQuery("app", "http://127.0.0.1:8123/callback")
	f.Add(good.Encode(), true)
	f.Add(good.Encode(), false)
	f.Add(h.authzQuery("dcr-1", "http://localhost/cb").Encode()+"&scope=admin", true)
	f.Add(h.authzQuery(testCIMDClient, "https://client.example.com/cb").Encode()+"&prompt=none", false)
	f.Add("client_id=app&redirect_uri=https%3A%2F%2Fevil.example.com%2F&response_type=code", true)
	f.Add("client_id=app&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&redirect_uri=https%3A%2F%2Fevil.example.com", true)
	f.Add("client_id=app&redirect_uri=http://127.0.0.1:99999/callback&state=%00&max_age=1e9", true)
	f.Add("client_id=app&redirect_uri=cursor%3A%2F%2Fanysphere.cursor-mcp%2Foauth%2Fcallback%3Fx&prompt=login+consent", true)
	f.Add("%zz", false)
	registered := map[string][]string{}
	for _, c := range testClients(f) {
		registered[c.ID] = c.RedirectURIs
	}
	registered["dcr-1"] = []string{"http://localhost/cb"}
	registered[testCIMDClient] = []string{"https://client.example.com/cb"}
	f.Fuzz(func(t *testing.T, rawQuery string, signedIn bool) {
		r := httptest.NewRequest(http.MethodGet, h.issuer+"/authorize", nil)
		r.URL.RawQuery = rawQuery
		if signedIn {
			r.AddCookie(&http.Cookie{Name: "test_user", Value: "alice"})
		}
		w := h.serve(r)
		if w.Code >= 500 {
			t.Fatalf("status %d", w.Code)
		}
		if w.Code/100 != 3 {
			return
		}
		if w.Code != http.StatusSeeOther {
			t.Fatalf("redirect status %d, want 303", w.Code)
		}
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			t.Fatalf("redirected for an unparsable query %q", rawQuery)
		}
		loc := w.Header().Get("Location")
		requested := q.Get("redirect_uri")
		if _, ok := oauth.MatchRedirectURI(registered[q.Get("client_id")], requested); !ok || len(q["redirect_uri"]) != 1 || len(q["client_id"]) != 1 {
			t.Fatalf("redirected to %q for client %q redirect %q", loc, q.Get("client_id"), requested)
		}
		base, _, _ := strings.Cut(requested, "?")
		if !strings.HasPrefix(loc, base+"?") {
			t.Fatalf("Location %q is not the requested redirect %q", loc, requested)
		}
		lu, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		lq := lu.Query()
		if len(lq["iss"]) != 1 || lq.Get("iss") != h.issuer || len(lq["state"]) > 1 || len(lq["code"])+len(lq["error"]) != 1 {
			t.Fatalf("bad redirect params %q", loc)
		}
	})
}
