package e2e

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/smtpsink"
	"github.com/mcpauth/caddy-mcpauth/internal/testop"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ory/fosite"
	"golang.org/x/oauth2"
)

// TestAssertedEmailsAgainstBinary runs requirements 35 and 36 through the
// built binary, with signup verification mailed through a real SMTP server
// (Postfix's smtp-sink) and an upstream OpenID Provider with link_by_email:
// a squatter's unverified account gets no grant and no upstream identity;
// an email an upstream does not verify is neither in the token nor in the
// guard's header; a verified email is, with email_verified true.
func TestAssertedEmailsAgainstBinary(t *testing.T) {
	sink := smtpsink.Start(t)
	binaries(t)
	// The OP's redirect URI is registered once the stack's port is known.
	op := testop.New(t)
	s := startStack(t, stackOpts{extraApp: fmt.Sprintf(`login {
			signup open
			smtp {
				host %s
				port %d
				tls none
				from "Todo MCP <no-reply@todo.example>"
			}
			oidc corp {
				issuer %s
				client_id %s
				client_secret %s
				display_name "Corp SSO"
				link_by_email
			}
		}`, sink.Host, sink.Port, op.Issuer, testop.ClientID, testop.ClientSecret)})
	registerRedirect(t, op, s.Issuer+"/login/corp/callback")
	conf := s.oauthConfig("todo:read")
	const victim, squatterPW, ownerPW = "victim@corp.example", "squatter chosen secret", "the owner's own passphrase"

	// 1. A squatter signs up with the victim's address: the same answer as
	// for any address, and a mail to the victim's mailbox.
	squatter := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	if page := signupAt(t, squatter, s, victim, squatterPW); !strings.Contains(page, "Check your email") {
		t.Fatalf("signup page:\n%s", tail(page, 2000))
	}
	squatLink := verifyLink(t, sink.Wait(t, victim, nil))

	// 2. Signed in, the squatter gets the verify page, not a code.
	if page := passwordSignIn(t, squatter, mustAuthURL(t, s, conf), victim, squatterPW); !strings.Contains(page, "Verify your email") {
		t.Fatalf("unverified account was not held back:\n%s", tail(page, 2000))
	}

	// 3. The victim signs in upstream (email verified there): no link into
	// the squatter's account.
	op.Set(func(o *testop.OP) {
		o.User = testop.User{Subject: "victim-sub", Email: victim, EmailVerified: true, Name: "Victim"}
	})
	status, page, q := upstreamSignIn(t, newBrowser(t, s.Client, "http://127.0.0.1:5555/"), s, conf)
	if status != http.StatusConflict || !strings.Contains(page, "Sign in with it first") || q != nil {
		t.Fatalf("link into the unverified account: %d %v\n%s", status, q, tail(page, 2000))
	}

	// 4. An upstream user whose email the provider does not verify gets a
	// token without email, and the guard forwards no email header.
	op.Set(func(o *testop.OP) {
		o.User = testop.User{Subject: "zed-sub", Email: "zed@corp.example", EmailVerified: false, Name: "Zed"}
	})
	status, page, q = upstreamSignIn(t, newBrowser(t, s.Client, "http://127.0.0.1:5555/"), s, conf)
	if q == nil {
		t.Fatalf("upstream sign-in: %d\n%s", status, tail(page, 2000))
	}
	tok := exchange(t, s, conf, q)
	if c := jwtClaims(t, tok.AccessToken); c["email"] != nil || c["email_verified"] != nil {
		t.Fatalf("unverified email asserted: %v", c)
	}
	if who := whoamiWith(t, s, tok.AccessToken); strings.Contains(who, "X-Mcp-Email") || strings.Contains(who, "zed@corp.example") {
		t.Fatalf("guard forwarded an unverified email: %s", who)
	}

	// 5. The owner cannot confirm the squatter's link (no password), signs
	// up again and confirms their own link: verified, with their password.
	owner := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	if st, _ := confirmAt(t, owner, s, squatLink, ownerPW); st != http.StatusBadRequest {
		t.Fatalf("squatter's link confirmed with another password: %d", st)
	}
	signupAt(t, owner, s, victim, ownerPW)
	var claim string
	deadline := time.Now().Add(20 * time.Second)
	for claim == "" && time.Now().Before(deadline) {
		for _, m := range sink.Messages(t, victim) {
			if l := verifyLink(t, m); l != squatLink {
				claim = l
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if claim == "" {
		t.Fatal("no mail for the owner's signup")
	}
	if st, body := confirmAt(t, owner, s, claim, ownerPW); st != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", st, tail(body, 2000))
	}

	// 6. Now verified: the token asserts the email with email_verified, the
	// guard forwards it, and the upstream identity links into the account.
	res := owner.authorize(t, mustAuthURL(t, s, conf), victim, ownerPW)
	tok = exchange(t, s, conf, res.Query)
	if c := jwtClaims(t, tok.AccessToken); c["email"] != victim || c["email_verified"] != true {
		t.Fatalf("verified email not asserted: %v", c)
	}
	if who := whoamiWith(t, s, tok.AccessToken); !strings.Contains(who, victim) {
		t.Fatalf("guard did not forward the verified email: %s", who)
	}
	op.Set(func(o *testop.OP) {
		o.User = testop.User{Subject: "victim-sub", Email: victim, EmailVerified: true, Name: "Victim"}
	})
	if status, page, q = upstreamSignIn(t, newBrowser(t, s.Client, "http://127.0.0.1:5555/"), s, conf); q == nil {
		t.Fatalf("link into the verified account: %d\n%s", status, tail(page, 2000))
	}
	if c := jwtClaims(t, exchange(t, s, conf, q).AccessToken); c["sub"] != jwtClaims(t, tok.AccessToken)["sub"] {
		t.Fatalf("upstream identity landed in %v, want the verified account %v", c["sub"], jwtClaims(t, tok.AccessToken)["sub"])
	}
	// The squatter's password no longer works.
	if page := passwordSignIn(t, newBrowser(t, s.Client, "http://127.0.0.1:5555/"), mustAuthURL(t, s, conf), victim, squatterPW); !strings.Contains(page, "Incorrect email or password") {
		t.Fatalf("squatter's password still signs in:\n%s", tail(page, 2000))
	}
}

func registerRedirect(t *testing.T, op *testop.OP, uri string) {
	t.Helper()
	op.Set(func(o *testop.OP) {
		o.Store.Clients[testop.ClientID].(*fosite.DefaultClient).RedirectURIs = []string{uri}
	})
}

// mustAuthURL is an authorization request of conf for the stack's MCP
// resource; its PKCE verifier is kept by state for exchange.
func mustAuthURL(t *testing.T, s *stack, conf *oauth2.Config) string {
	t.Helper()
	v := oauth2.GenerateVerifier()
	u := conf.AuthCodeURL("st-"+v[:10], oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", s.MCPURL))
	verifiersByState.Store("st-"+v[:10], v)
	return u
}

// verifiersByState holds the PKCE verifiers of mustAuthURL.
var verifiersByState sync.Map

// exchange redeems the code of an authorization response.
func exchange(t *testing.T, s *stack, conf *oauth2.Config, q url.Values) *oauth2.Token {
	t.Helper()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("authorization response: %v", q)
	}
	tok, err := conf.Exchange(s.ctx(), q.Get("code"), oauth2.VerifierOption(verifierOf(q.Get("state"))), oauth2.SetAuthURLParam("resource", s.MCPURL))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

func verifierOf(state string) string {
	v, _ := verifiersByState.Load(state)
	s, _ := v.(string)
	return s
}

// readBody returns a function that reads a response's status and body.
func readBody(t *testing.T) func(*http.Response, error) (int, string) {
	return func(resp *http.Response, err error) (int, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfIn(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in:\n%s", tail(page, 2000))
	}
	return m[1]
}

// signupAt posts the signup form and returns the answer page.
func signupAt(t *testing.T, b *browser, s *stack, email, pw string) string {
	t.Helper()
	_, page := readBody(t)(b.Get(s.Issuer + "/signup"))
	st, body := readBody(t)(b.PostForm(s.Issuer+"/signup", url.Values{"csrf_token": {csrfIn(t, page)}, "email": {email}, "password": {pw}}))
	if st != http.StatusOK {
		t.Fatalf("signup: %d\n%s", st, tail(body, 2000))
	}
	return body
}

var linkRE = regexp.MustCompile(`https://\S+/verify-email\?\S+`)

func verifyLink(t *testing.T, m smtpsink.Message) string {
	t.Helper()
	l := linkRE.FindString(m.Body)
	if l == "" {
		t.Fatalf("no verification link in:\n%s", m.Body)
	}
	return l
}

// confirmAt opens a verification link and confirms it with pw; the final
// page after redirects is returned.
func confirmAt(t *testing.T, b *browser, s *stack, link, pw string) (int, string) {
	t.Helper()
	st, page := readBody(t)(b.Get(link))
	if st != http.StatusOK {
		return st, page
	}
	u, _ := url.Parse(link)
	return readBody(t)(b.PostForm(s.Issuer+"/verify-email", url.Values{"csrf_token": {csrfIn(t, page)}, "token": {u.Query().Get("token")}, "password": {pw}}))
}

// passwordSignIn starts authURL, signs in with the password form and
// returns the page the browser lands on.
func passwordSignIn(t *testing.T, b *browser, authURL, email, pw string) string {
	t.Helper()
	resp, err := b.Get(authURL)
	st, page := readBody(t)(resp, err)
	if st != http.StatusOK {
		t.Fatalf("authorize: %d", st)
	}
	f, err := findForm(page)
	if err != nil {
		t.Fatal(err)
	}
	f.values.Set("email", email)
	f.values.Set("password", pw)
	action, _ := resp.Request.URL.Parse(f.action)
	_, body := readBody(t)(b.PostForm(action.String(), f.values))
	return body
}

// upstreamSignIn starts an authorization request and clicks "Corp SSO":
// the query of the redirect to the client, or the status and page shown.
func upstreamSignIn(t *testing.T, b *browser, s *stack, conf *oauth2.Config) (int, string, url.Values) {
	t.Helper()
	st, page := readBody(t)(b.Get(mustAuthURL(t, s, conf)))
	if st != http.StatusOK {
		t.Fatalf("authorize: %d", st)
	}
	m := regexp.MustCompile(`(?s)<form method="post" action="/login/corp">\s*<input type="hidden" name="csrf_token" value="([^"]+)">\s*<input type="hidden" name="return_to" value="([^"]+)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no Corp SSO button:\n%s", tail(page, 3000))
	}
	resp, err := b.PostForm(s.Issuer+"/login/corp", url.Values{"csrf_token": {m[1]}, "return_to": {html.UnescapeString(m[2])}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && strings.HasPrefix(loc, b.redirectPrefix) {
		u, _ := url.Parse(loc)
		return resp.StatusCode, "", u.Query()
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// whoamiWith calls the sample server's whoami tool through the guard with
// token and returns what the upstream saw.
func whoamiWith(t *testing.T, s *stack, token string) string {
	t.Helper()
	hc := &http.Client{Transport: bearer{token: token, base: s.Client.Transport}}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-email", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.MCPURL, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect with token: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	return toolJSON(t, res)
}

type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// TestUnverifiedEmailsNotAssertedAgainstBinary: without smtp, a self-signup
// address stays unverified: its token has no email, the guard forwards no
// email header, and link_by_email does not hand a squatter the victim's
// upstream identity (the pre-account takeover of requirement 35).
func TestUnverifiedEmailsNotAssertedAgainstBinary(t *testing.T) {
	binaries(t)
	op := testop.New(t)
	s := startStack(t, stackOpts{extraApp: fmt.Sprintf(`login {
			signup open
			oidc corp {
				issuer %s
				client_id %s
				client_secret %s
				display_name "Corp SSO"
				link_by_email
			}
		}`, op.Issuer, testop.ClientID, testop.ClientSecret)})
	registerRedirect(t, op, s.Issuer+"/login/corp/callback")
	conf := s.oauthConfig("todo:read")
	const victim, squatterPW = "victim@corp.example", "squatter chosen secret"

	squatter := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	_, page := readBody(t)(squatter.Get(s.Issuer + "/signup"))
	readBody(t)(squatter.PostForm(s.Issuer+"/signup", url.Values{"csrf_token": {csrfIn(t, page)}, "email": {victim}, "password": {squatterPW}}))
	res := squatter.authorize(t, mustAuthURL(t, s, conf), victim, squatterPW)
	tok := exchange(t, s, conf, res.Query)
	squatterSub := jwtClaims(t, tok.AccessToken)["sub"]
	if c := jwtClaims(t, tok.AccessToken); c["email"] != nil || c["email_verified"] != nil {
		t.Fatalf("self-signup email asserted in the token: %v", c)
	}
	if who := whoamiWith(t, s, tok.AccessToken); strings.Contains(who, victim) {
		t.Fatalf("guard forwarded a self-signup email: %s", who)
	}

	op.Set(func(o *testop.OP) {
		o.User = testop.User{Subject: "victim-sub", Email: victim, EmailVerified: true, Name: "Victim"}
	})
	status, body, q := upstreamSignIn(t, newBrowser(t, s.Client, "http://127.0.0.1:5555/"), s, conf)
	if q != nil {
		if c := jwtClaims(t, exchange(t, s, conf, q).AccessToken); c["sub"] == squatterSub {
			t.Fatal("the victim's upstream identity was linked into the squatter's account")
		}
		t.Fatalf("upstream sign-in into a taken, unverified address went through: %v", q)
	}
	if status != http.StatusConflict || !strings.Contains(body, "Sign in with it first") {
		t.Fatalf("refusal page: %d\n%s", status, tail(body, 2000))
	}

	// The seeded (operator-verified) account's email is asserted and forwarded.
	tok = s.login(t, conf)
	if c := jwtClaims(t, tok.AccessToken); c["email"] != aliceEmail || c["email_verified"] != true {
		t.Fatalf("verified email not asserted: %v", c)
	}
	if who := whoamiWith(t, s, tok.AccessToken); !strings.Contains(who, aliceEmail) {
		t.Fatalf("guard did not forward the verified email: %s", who)
	}
}
