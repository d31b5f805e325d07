package resourceguard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzBearerHeader: ParseBearer never panics, and an accepted token is a
// non-empty b64token that appears verbatim at the end of the input, after a
// case-insensitive "Bearer" and spaces.
func FuzzBearerHeader(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "BEARER  x==", "Bearer", "Bearer ", "Basic Zm9v",
		"Bearer a b", "Bearer\tabc", "Bearerabc", "Bearer =", "Bearer a=b", "", " Bearer  abc ", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, kind := ParseBearer(v)
		switch kind {
		case BearerOK:
			if tok == "" || !validB64Token(tok) || len(tok) > maxTokenLen {
				t.Fatalf("accepted bad token %q from %q", tok, v)
			}
			trimmed := strings.Trim(v, " \t")
			if !strings.HasSuffix(trimmed, tok) || !strings.EqualFold(trimmed[:6], "bearer") ||
				strings.TrimLeft(trimmed[6:], " ") != tok || trimmed[6] != ' ' {
				t.Fatalf("token %q not the credentials of %q", tok, v)
			}
		case BearerOtherScheme, BearerMalformed:
			if tok != "" {
				t.Fatalf("refusal returned a token %q", tok)
			}
		default:
			t.Fatalf("unknown result %d", kind)
		}
	})
}

// FuzzChallengeHeader: whatever the challenge holds, the header parses with
// an independent RFC 7235 parser and every value round-trips (after the
// documented sanitizing of error_description and scope).
func FuzzChallengeHeader(f *testing.F) {
	f.Add("https://mcp.example.com/.well-known/oauth-protected-resource/mcp", "invalid_token", "the token expired", "mcp todo:read")
	f.Add(`https://x/"\`, "insufficient_scope", "a \"b\" \\ c\r\n", "a\x00 b")
	f.Add("", "", "", "")
	f.Add("u\x7f\x01\t", "bad code!", "\xff\xfe", `" \`)
	f.Fuzz(func(t *testing.T, mdURL, code, desc, scopes string) {
		c := &Challenge{Status: 403, Error: code, Description: desc, Scopes: strings.Split(scopes, " ")}
		h := c.Header(mdURL)
		scheme, params, err := parseChallenge(h)
		if err != nil || scheme != "Bearer" {
			t.Fatalf("header %q does not parse: %v", h, err)
		}
		wantURL := stripCTL(mdURL)
		if got, ok := params["resource_metadata"]; (wantURL != "" || mdURL != "") && (!ok || got != wantURL) {
			t.Fatalf("resource_metadata %q, want %q (header %q)", got, wantURL, h)
		}
		var wantScopes []string
		for _, s := range c.Scopes {
			if validScopeToken(s) {
				wantScopes = append(wantScopes, s)
			}
		}
		if got := params["scope"]; got != strings.Join(wantScopes, " ") {
			t.Fatalf("scope %q, want %q", got, wantScopes)
		}
		if validErrorCode(code) {
			if params["error"] != code {
				t.Fatalf("error %q, want %q", params["error"], code)
			}
			d := params["error_description"]
			for i := 0; i < len(d); i++ {
				if !descChar(d[i]) {
					t.Fatalf("error_description has %q", d[i])
				}
			}
			if d != sanitizeDescription(desc) {
				t.Fatalf("error_description %q", d)
			}
		} else if _, ok := params["error"]; ok {
			t.Fatalf("invalid error code %q emitted", code)
		}
		if strings.ContainsAny(h, "\r\n\x00") {
			t.Fatalf("header has control characters: %q", h)
		}
	})
}

func stripCTL(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\t' || (c >= 0x20 && c != 0x7f) {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzVerify: random tokens never panic and are never accepted. Seeds are
// valid tokens and mutations of them; the fuzzer cannot forge an ES256
// signature, so any acceptance is a bug.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, func(c *Config) { c.CacheSize = -1 })
	good := fx.token(nil)
	parts := strings.Split(good, ".")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + "." + parts[1] + "." + parts[2][:10])
	f.Add(b64u([]byte(`{"alg":"none","kid":"ec1","typ":"at+jwt"}`)) + "." + parts[1] + ".")
	f.Add(b64u([]byte(`{"alg":"HS256","kid":"ec1","typ":"at+jwt"}`)) + "." + parts[1] + "." + parts[2])
	f.Add(b64u([]byte(`{"alg":"ES256","kid":"ec1","typ":"at+jwt","jwk":{}}`)) + "." + parts[1] + "." + parts[2])
	f.Add("a.b.c")
	f.Add("")
	// And a guard with the cache, holding the good token: its characters
	// are checked on a miss only (verified), after the lookup.
	cg, err := New(Config{Resource: testResource, Issuer: testIssuer, Keys: fx.keys, Now: fx.clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	warm := httptest.NewRequest("POST", testResource, nil)
	warm.Header["Authorization"] = []string{"Bearer " + good}
	if _, c := cg.Check(warm); c != nil {
		f.Fatalf("good token refused: %+v", c)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if tok == good {
			return
		}
		for _, g := range []*Guard{fx.g, cg} {
			r := httptest.NewRequest("POST", testResource, nil)
			r.Header["Authorization"] = []string{"Bearer " + tok}
			p, c := g.Check(r)
			if c == nil || p != nil {
				t.Fatalf("accepted token %q", tok)
			}
			if c.Status == http.StatusInternalServerError || c.Status == 0 {
				t.Fatalf("status %d", c.Status)
			}
		}
	})
}

// FuzzJSONRPC: the body parser never panics, and when it accepts a body the
// methods it reports are those encoding/json would see in exact-case members.
func FuzzJSONRPC(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`,
		`[{"method":"a"},{"method":"b","params":{"name":"c"}}]`, `{"Method":"x","method":"y"}`, `[]`, `{`, `1`,
		`{"method":"resources/read","params":{"uri":"u"}}`, `{"METHOD":"x","params":{"NAME":"y"}}`,
		`{"method":"tools/call","params":{"name":null}}`, `{"metho\u0064":"a","params":{"nam\u0065":"b"}}`, `{"paramſ":{"name":"k"},"method":"m"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		calls, err := parseJSONRPC(body)
		if err != nil {
			return
		}
		for _, c := range calls {
			if c.target != "" && c.method == "" {
				t.Fatalf("target without method: %+v", c)
			}
		}
		// Differential check against encoding/json struct decoding, which is
		// how Go MCP servers (the upstream) read the same body.
		trimmed := bytes.TrimSpace(body)
		if len(calls) != 1 || len(trimmed) == 0 || trimmed[0] != '{' {
			return
		}
		var std struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &std) != nil {
			return
		}
		c := calls[0]
		if std.Method != c.method {
			t.Fatalf("method: encoding/json %q, guard %q (body %q)", std.Method, c.method, body)
		}
		if c.method != "" && !strings.HasPrefix(c.method, "resources/") && std.Params.Name != c.target {
			t.Fatalf("name: encoding/json %q, guard %q (body %q)", std.Params.Name, c.target, body)
		}
	})
}

// FuzzQueryHasAccessToken: the query scan never panics and agrees with
// url.ParseQuery wherever the standard parser sees an access_token pair.
func FuzzQueryHasAccessToken(f *testing.F) {
	for _, s := range []string{"access_token=x", "a=1;access_token=x", "acc%65ss_token", "access.token=1", "%", "&&;;=", "a=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got := queryHasAccessToken(q)
		if v, _ := url.ParseQuery(q); v.Has("access_token") && !got {
			t.Fatalf("missed access_token in %q", q)
		}
	})
}
