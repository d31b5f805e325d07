package saml

import (
	"bytes"
	"context"
	"encoding/base64"
	"github.com/mcpauth/caddy-mcpauth/idp/internal/logtest"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/samlidp"
	"golang.org/x/oauth2"

	"github.com/mcpauth/caddy-mcpauth/idp"
)

// TestFullFlow signs in through the real IdP, from a client's authorization
// request to an access token accepted by the resource guard, with both
// bindings, encrypted and plain assertions.
func TestFullFlow(t *testing.T) {
	tests := []struct {
		name string
		o    envOpts
	}{
		{"redirect binding, encrypted assertion", envOpts{}},
		{"post binding, encrypted assertion", envOpts{cfg: func(c *Config) { c.Binding = "post" }}},
		{"redirect binding, plain assertion", envOpts{plain: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.o)
			var firstSub string
			for i := 0; i < 2; i++ {
				b := e.browser()
				verifier := oauth2.GenerateVerifier()
				start := e.start(b, verifier)
				checkBindingCookie(t, start, "__Host-"+CookiePrefix+"corp")
				if start.status == http.StatusOK { // POST binding: our auto-submitting page
					csp := start.header.Get("Content-Security-Policy")
					if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'nonce-") ||
						!strings.Contains(start.body, `<script nonce="`) || start.header.Get("Cache-Control") != "no-store" {
						t.Fatalf("post binding page: CSP %q\n%s", csp, start.body)
					}
				}
				acs, form := e.atIdP(b, start)
				p := e.finish(b, acs, form, verifier)
				acct, err := e.store.AccountByIdentity(context.Background(), "corp", "alice@corp.example")
				if err != nil {
					t.Fatal(err)
				}
				if p.Subject != acct.ID || acct.Name != "Alice Corp" || acct.Email != "alice@corp.example" || acct.EmailVerified {
					t.Fatalf("principal %+v account %+v", p, acct)
				}
				id, ok := b.whoami(e)
				if !ok || id.Method != "saml:corp" || strings.Join(id.Groups, ",") != "mcp-users,staff" {
					t.Fatalf("identity %+v", id)
				}
				if i == 0 {
					firstSub = p.Subject
				} else if p.Subject != firstSub {
					t.Fatalf("sub changed: %s then %s", firstSub, p.Subject)
				}
			}
			if e.successes() != 2 || len(e.failures()) != 0 {
				t.Fatalf("audit: %d successes, failures %v", e.successes(), e.failures())
			}
		})
	}
}

// checkBindingCookie: the binding cookie is SameSite=None; Secure;
// HttpOnly, and it is the only SameSite=None cookie we set.
func checkBindingCookie(t *testing.T, r resp, name string) {
	t.Helper()
	found := false
	for _, line := range r.header.Values("Set-Cookie") {
		if strings.Contains(strings.ToLower(line), "samesite=none") && !strings.HasPrefix(line, name+"=") {
			t.Fatalf("another SameSite=None cookie: %s", line)
		}
	}
	for _, c := range r.cookies {
		if c.Name == name {
			found = true
			if c.SameSite != http.SameSiteNoneMode || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || len(c.Value) < 43 {
				t.Fatalf("binding cookie %+v", c)
			}
		}
	}
	if !found {
		t.Fatalf("no binding cookie %s in %v", name, r.header.Values("Set-Cookie"))
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, envOpts{keyStore: true})
	r := e.browser().get(e.srv.URL + "/login/corp/metadata")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("metadata %d %q", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{`entityID="` + e.srv.URL + `/login/corp/metadata"`, `Location="` + e.srv.URL + `/login/corp/acs"`,
		`AuthnRequestsSigned="true"`, `WantAssertionsSigned="true"`, "X509Certificate"} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("metadata lacks %s:\n%s", want, r.body)
		}
	}
	if strings.Contains(r.body, "HTTP-Artifact") {
		t.Fatal("metadata advertises the artifact binding")
	}
	if p := e.browser().do(http.MethodPost, e.srv.URL+"/login/corp/metadata", url.Values{}); p.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST metadata = %d", p.status)
	}
	if g := e.browser().get(e.srv.URL + "/login/corp/acs"); g.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET acs = %d", g.status)
	}
	// The generated key persists: a second provider on the same key store
	// publishes the same certificate.
	k1, _ := e.prov.cert.PublicKey, 0
	cfg := e.prov.cfg
	p2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(k1, p2.cert.PublicKey) {
		t.Fatal("SP key not persisted")
	}
}

// response edits the SAMLResponse of a form.
func response(t *testing.T, form url.Values, edit func(doc *etree.Document)) url.Values {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("SAMLResponse", base64.StdEncoding.EncodeToString(out))
	return f
}

func removeSignature(el *etree.Element) {
	for _, ch := range el.ChildElements() {
		if ch.Tag == "Signature" {
			el.RemoveChild(ch)
		}
	}
}

// resign edits the assertion and signs it again with key of the IdP (or
// another), as a compromised or misconfigured IdP would. The response's
// own signature is dropped.
func (e *env) resign(t *testing.T, other bool, edit func(a *etree.Element)) func(doc *etree.Document) {
	return func(doc *etree.Document) {
		removeSignature(doc.Root())
		a := doc.FindElement("//Assertion")
		removeSignature(a)
		if edit != nil {
			edit(a)
		}
		key, cert := e.idp.key, e.idp.cert
		if other {
			key, cert = selfSigned(t, "evil")
		}
		signed, err := signer(t, key, cert).SignEnveloped(a)
		if err != nil {
			t.Fatal(err)
		}
		parent := a.Parent()
		idx := a.Index()
		parent.RemoveChildAt(idx)
		parent.InsertChildAt(idx, signed)
	}
}

// TestRefused sends hostile and broken responses to the ACS. Each must end
// on our error page, create no session and no account, and be audited with
// its reason.
func TestRefused(t *testing.T) {
	type flow struct {
		o envOpts
		// edit changes the IdP's response before it reaches us.
		edit func(t *testing.T, e *env) func(doc *etree.Document)
		// run replaces the final POST; it returns our answer.
		run func(t *testing.T, e *env, b *browser, acs string, form url.Values) resp
		// setup runs before the flow.
		setup func(e *env)
	}
	plain := envOpts{plain: true}
	tests := []struct {
		name   string
		f      flow
		reason string
	}{
		{"unsigned assertion", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return func(doc *etree.Document) {
				removeSignature(doc.Root())
				removeSignature(doc.FindElement("//Assertion"))
			}
		}}, "assertion_unsigned"},
		{"only the response signed", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return func(doc *etree.Document) {
				removeSignature(doc.Root())
				removeSignature(doc.FindElement("//Assertion"))
				signed, err := signer(t, e.idp.key, e.idp.cert).SignEnveloped(doc.Root())
				if err != nil {
					t.Fatal(err)
				}
				doc.SetRoot(signed)
			}
		}}, "assertion_unsigned"},
		{"assertion changed after signing", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return func(doc *etree.Document) {
				removeSignature(doc.Root())
				doc.FindElement("//Assertion/Subject/NameID").SetText("admin@corp.example")
			}
		}}, "signature_invalid"},
		{"assertion signed by another key", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return e.resign(t, true, nil)
		}}, "signature_invalid"},
		{"no audience restriction", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return e.resign(t, false, func(a *etree.Element) {
				c := a.FindElement("Conditions")
				c.RemoveChild(c.FindElement("AudienceRestriction"))
			})
		}}, "audience_missing"},
		{"wrong audience", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return e.resign(t, false, func(a *etree.Element) {
				a.FindElement("Conditions/AudienceRestriction/Audience").SetText("https://other-sp.example/")
			})
		}}, "audience_mismatch"},
		{"second audience restriction without us", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return e.resign(t, false, func(a *etree.Element) {
				c := a.FindElement("Conditions")
				ar := c.CreateElement("saml:AudienceRestriction")
				ar.CreateElement("saml:Audience").SetText("https://other-sp.example/")
			})
		}}, "audience_mismatch"},
		{"signature wrapping: unsigned assertion before the signed one", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return func(doc *etree.Document) {
				removeSignature(doc.Root())
				signedA := doc.FindElement("//Assertion")
				evil := signedA.Copy()
				removeSignature(evil)
				evil.SelectAttr("ID").Value = "id-evil"
				evil.FindElement("Subject/NameID").SetText("admin@corp.example")
				doc.Root().InsertChildAt(signedA.Index(), evil)
			}
		}}, "assertion_count"},
		{"signature wrapping: signed assertion hidden inside a forged one", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return func(doc *etree.Document) {
				removeSignature(doc.Root())
				signedA := doc.FindElement("//Assertion")
				evil := signedA.Copy()
				removeSignature(evil)
				evil.SelectAttr("ID").Value = "id-evil"
				evil.FindElement("Subject/NameID").SetText("admin@corp.example")
				advice := etree.NewElement("saml:Advice")
				advice.AddChild(signedA.Copy())
				evil.AddChild(advice)
				idx := signedA.Index()
				doc.Root().RemoveChildAt(idx)
				doc.Root().InsertChildAt(idx, evil)
			}
		}}, "assertion_count"},
		{"expired assertion (signed by the IdP)", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return e.resign(t, false, func(a *etree.Element) {
				past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
				a.FindElement("Conditions").SelectAttr("NotOnOrAfter").Value = past
				a.FindElement("Subject/SubjectConfirmation/SubjectConfirmationData").SelectAttr("NotOnOrAfter").Value = past
			})
		}}, "assertion_expired"},
		{"expired assertion (our clock)", flow{setup: func(e *env) { e.clk.Set(time.Hour) }}, "assertion_expired"},
		{"assertion for another request", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return e.resign(t, false, func(a *etree.Element) {
				a.FindElement("Subject/SubjectConfirmation/SubjectConfirmationData").SelectAttr("InResponseTo").Value = "id-someone-else"
			})
		}}, "request_id_mismatch"},
		{"assertion for another recipient", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return e.resign(t, false, func(a *etree.Element) {
				a.FindElement("Subject/SubjectConfirmation/SubjectConfirmationData").SelectAttr("Recipient").Value = "https://other-sp.example/acs"
			})
		}}, "destination_mismatch"},
		{"assertion without conditions", flow{o: plain, edit: func(t *testing.T, e *env) func(*etree.Document) {
			return e.resign(t, false, func(a *etree.Element) { a.RemoveChild(a.FindElement("Conditions")) })
		}}, "assertion_invalid"},
		{"replayed response", flow{run: func(t *testing.T, e *env, b *browser, acs string, form url.Values) resp {
			var cookie *http.Cookie
			u, _ := url.Parse(e.srv.URL)
			for _, c := range b.c.Jar.Cookies(u) {
				if c.Name == "__Host-"+CookiePrefix+"corp" {
					cookie = c
				}
			}
			if first := b.do(http.MethodPost, acs, form); first.status != http.StatusSeeOther {
				t.Fatalf("first post = %d %s", first.status, first.body)
			}
			nb := e.browser()
			nb.c.Jar.SetCookies(u, []*http.Cookie{cookie})
			return nb.do(http.MethodPost, acs, form)
		}}, "request_unknown"},
		{"response to a request we never sent", flow{run: func(t *testing.T, e *env, b *browser, acs string, form url.Values) resp {
			// This browser has a live request of its own; the response
			// answers another browser's request.
			other := e.browser()
			v := oauth2.GenerateVerifier()
			_, otherForm := e.atIdP(other, e.start(other, v))
			return b.do(http.MethodPost, acs, otherForm)
		}}, "request_id_mismatch"},
		{"IdP-initiated response (real samlidp shortcut) while a request is live", flow{run: func(t *testing.T, e *env, b *browser, acs string, form url.Values) resp {
			// b is signed in at the IdP (atIdP) and has a live request of
			// ours; the IdP sends an unsolicited response.
			e.idp.put(t, "/shortcuts/go", mustJSON(samlidp.Shortcut{Name: "go", ServiceProviderID: e.prov.EntityID()}))
			r := b.get(e.idp.srv.URL + "/login/go")
			action, f := formOf(t, r.body)
			if action != e.prov.ACSURL() || f.Get("SAMLResponse") == "" {
				t.Fatalf("idp-initiated: %d %s", r.status, r.body)
			}
			return b.do(http.MethodPost, action, f)
		}}, "request_id_mismatch"},
		{"unsolicited response (no request in this browser)", flow{run: func(t *testing.T, e *env, b *browser, acs string, form url.Values) resp {
			return e.browser().do(http.MethodPost, acs, form)
		}}, "binding_cookie_missing"},
		{"artifact binding", flow{run: func(t *testing.T, e *env, b *browser, acs string, form url.Values) resp {
			return b.do(http.MethodPost, acs, url.Values{"SAMLart": {"AAQAAMFbLinkFtK"}})
		}}, "response_malformed"},
		{"not base64", flow{run: func(t *testing.T, e *env, b *browser, acs string, form url.Values) resp {
			return b.do(http.MethodPost, acs, url.Values{"SAMLResponse": {"<Response/>"}})
		}}, "response_malformed"},
		{"not a response", flow{run: func(t *testing.T, e *env, b *browser, acs string, form url.Values) resp {
			return b.do(http.MethodPost, acs, url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(`<x:AuthnRequest xmlns:x="urn:oasis:names:tc:SAML:2.0:protocol"/>`))}})
		}}, "response_malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.f.o)
			if tc.f.setup != nil {
				tc.f.setup(e)
			}
			b := e.browser()
			acs, form := e.atIdP(b, e.start(b, oauth2.GenerateVerifier()))
			if tc.f.edit != nil {
				form = response(t, form, tc.f.edit(t, e))
			}
			var res resp
			if tc.f.run != nil {
				res = tc.f.run(t, e, b, acs, form)
			} else {
				res = b.do(http.MethodPost, acs, form)
			}
			if res.status != http.StatusBadRequest || !strings.Contains(res.body, "could not be completed") {
				t.Fatalf("status %d, body:\n%s", res.status, res.body)
			}
			if hasSessionCookie(res.cookies) {
				t.Fatal("a refused login set a session cookie")
			}
			f := e.failures()
			if len(f) == 0 || f[len(f)-1] != tc.reason {
				t.Fatalf("audited failures %v, want last %q", f, tc.reason)
			}
			if tc.f.run == nil {
				if _, ok := b.whoami(e); ok {
					t.Fatal("signed in after a refusal")
				}
				if accts, _ := e.store.ListAccounts(context.Background()); len(accts) != 0 || e.successes() != 0 {
					t.Fatalf("refusal created %d accounts, %d logins", len(accts), e.successes())
				}
			}
		})
	}
}

// TestAcceptResponseSignature: with the option on, an assertion covered
// only by the Response's signature is accepted.
func TestAcceptResponseSignature(t *testing.T) {
	e := newEnv(t, envOpts{plain: true, cfg: func(c *Config) { c.AcceptResponseSignature = true }})
	b := e.browser()
	v := oauth2.GenerateVerifier()
	acs, form := e.atIdP(b, e.start(b, v))
	form = response(t, form, func(doc *etree.Document) {
		removeSignature(doc.Root())
		removeSignature(doc.FindElement("//Assertion"))
		signed, err := signer(t, e.idp.key, e.idp.cert).SignEnveloped(doc.Root())
		if err != nil {
			t.Fatal(err)
		}
		doc.SetRoot(signed)
	})
	if p := e.finish(b, acs, form, v); p.Subject == "" {
		t.Fatal("no subject")
	}
}

// TestAllowRules: allow rules apply to SAML identities; a domain rule needs
// TrustEmail.
func TestAllowRules(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*Config)
		status int
	}{
		{"group allowed", func(c *Config) { c.Allow.Groups = []string{"mcp-users"} }, http.StatusSeeOther},
		{"group not allowed", func(c *Config) { c.Allow.Groups = []string{"admins"} }, http.StatusForbidden},
		{"domain without trusted email", func(c *Config) { c.Allow.EmailDomains = []string{"corp.example"} }, http.StatusForbidden},
		{"domain with trusted email", func(c *Config) { c.Allow.EmailDomains = []string{"corp.example"}; c.TrustEmail = true }, http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{cfg: tc.cfg})
			b := e.browser()
			acs, form := e.atIdP(b, e.start(b, oauth2.GenerateVerifier()))
			r := b.do(http.MethodPost, acs, form)
			if r.status != tc.status {
				t.Fatalf("status %d\n%s", r.status, r.body)
			}
			if tc.status != http.StatusSeeOther && (hasSessionCookie(r.cookies) || len(e.failures()) != 1 || e.failures()[0] != "not_allowed") {
				t.Fatalf("refusal: cookies %v failures %v", r.cookies, e.failures())
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	e := newEnv(t, envOpts{})
	good := func() Config {
		c := e.prov.cfg
		c.IdPMetadataURL, c.IdPMetadata = "", []byte(e.browser().get(e.idp.srv.URL+"/metadata").body)
		return c
	}
	tests := []struct {
		name string
		mut  func(*Config)
		ok   bool
	}{
		{"valid", func(*Config) {}, true},
		{"two metadata sources", func(c *Config) { c.IdPMetadataURL = "https://idp.example.com/md" }, false},
		{"http metadata URL", func(c *Config) { c.IdPMetadata = nil; c.IdPMetadataURL = "http://idp.example.com/md" }, false},
		{"base URL of another provider", func(c *Config) { c.BaseURL = "https://auth.example.com/login/other" }, false},
		{"http base URL", func(c *Config) { c.BaseURL = "http://auth.example.com/login/corp" }, false},
		{"certificate without key", func(c *Config) { c.SPCertificatePEM = []byte("x") }, false},
		{"no key and no key store", func(c *Config) { c.SPCertificatePEM, c.SPKeyPEM = nil, nil }, false},
		{"key of another certificate", func(c *Config) {
			blob, _ := generateKeyPair("x", time.Now())
			c.SPCertificatePEM = blob[:bytes.Index(blob, []byte("-----BEGIN PRIVATE KEY"))]
		}, false},
		{"bad binding", func(c *Config) { c.Binding = "artifact" }, false},
		{"metadata validity too short", func(c *Config) { c.MetadataValidity = 30 * time.Minute }, false},
		{"metadata validity too long", func(c *Config) { c.MetadataValidity = 400 * 24 * time.Hour }, false},
		{"metadata validity a year", func(c *Config) { c.MetadataValidity = 365 * 24 * time.Hour }, true},
		{"link by email without trusted email", func(c *Config) { c.LinkByEmail = true }, false},
		{"metadata not XML", func(c *Config) { c.IdPMetadata = []byte("not xml") }, false},
		{"metadata with http SSO", func(c *Config) {
			c.IdPMetadata = []byte(strings.ReplaceAll(string(c.IdPMetadata), e.idp.srv.URL, "http://idp.example.com"))
		}, false},
		{"metadata without certificate", func(c *Config) {
			doc := etree.NewDocument()
			_ = doc.ReadFromBytes(c.IdPMetadata)
			for _, kd := range doc.FindElements("//KeyDescriptor") {
				kd.Parent().RemoveChild(kd)
			}
			c.IdPMetadata, _ = doc.WriteToBytes()
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mut(&c)
			_, err := New(context.Background(), c)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// Provider names and the idp routes agree.
	if want := idp.ProviderBaseURL(e.srv.URL, "", "corp") + "/acs"; e.prov.ACSURL() != want {
		t.Fatalf("ACS %s, want %s", e.prov.ACSURL(), want)
	}
}

// TestResignedByIdPAccepted: the test's re-signing matches the IdP's, so
// the refusals above are about what was changed, not about the signing.
func TestResignedByIdPAccepted(t *testing.T) {
	e := newEnv(t, envOpts{plain: true})
	b := e.browser()
	v := oauth2.GenerateVerifier()
	acs, form := e.atIdP(b, e.start(b, v))
	form = response(t, form, e.resign(t, false, nil))
	if p := e.finish(b, acs, form, v); p.Subject == "" {
		t.Fatal("no subject")
	}
}

// TestSPKeyGeneratedWarns: a generated SP key (first start, or a lost
// storage) is logged as a warning that names the provider and tells the
// operator the IdP needs the new metadata; loading the kept key is quiet.
func TestSPKeyGeneratedWarns(t *testing.T) {
	log, rec := logtest.New()
	e := newEnv(t, envOpts{keyStore: true, cfg: func(c *Config) { c.Logger = log }})
	warn := rec.Find("WARN", "new SP key pair", "IdP must get our new metadata", "sp_cert_file", "provider=corp", "/login/corp/metadata")
	if len(warn) != 1 {
		t.Fatalf("want one key warning, got %q", rec.Lines())
	}
	if strings.Contains(warn[0], "PRIVATE KEY") {
		t.Fatal("the warning carries key material")
	}
	if _, err := New(context.Background(), e.prov.cfg); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Find("new SP key pair")); n != 1 {
		t.Fatalf("loading the stored key logged a new key (%d lines)", n)
	}
}

// TestMetadataValidity: validUntil of our metadata follows the configured
// validity (default 48h).
func TestMetadataValidity(t *testing.T) {
	for _, tc := range []struct {
		set, want time.Duration
	}{{0, 48 * time.Hour}, {30 * 24 * time.Hour, 30 * 24 * time.Hour}} {
		e := newEnv(t, envOpts{cfg: func(c *Config) { c.MetadataValidity = tc.set }})
		body := e.browser().get(e.srv.URL + "/login/corp/metadata").body
		doc := etree.NewDocument()
		if err := doc.ReadFromString(body); err != nil {
			t.Fatal(err)
		}
		v := doc.Root().SelectAttrValue("validUntil", "")
		until, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatalf("validUntil %q: %v", v, err)
		}
		if got := time.Until(until); got < tc.want-time.Minute || got > tc.want+time.Minute {
			t.Fatalf("set %s: validUntil in %s, want %s", tc.set, got, tc.want)
		}
	}
}

// TestIdPUnreachable: the IdP's metadata URL does not answer (an outage
// from the start). The sign-in page names the provider and says to try
// again, instead of "something went wrong on our side".
func TestIdPUnreachable(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/metadata"
	down.Close()
	e := newEnv(t, envOpts{cfg: func(c *Config) { c.IdPMetadataURL = downURL }})
	res := e.start(e.browser(), oauth2.GenerateVerifier())
	if res.status != http.StatusBadGateway || !strings.Contains(res.body, "We could not reach Corp SAML (corp) right now; try again in a minute") ||
		strings.Contains(res.body, "on our side") {
		t.Fatalf("status %d, body:\n%s", res.status, res.body)
	}
}
