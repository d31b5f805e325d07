package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func decodeSeg(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// TestOAuth2ClientAgainstBinary: a client using only golang.org/x/oauth2
// completes login → code → token → refresh → revoke against the built
// binary, and the refused cases are refused with the right error.
func TestOAuth2ClientAgainstBinary(t *testing.T) {
	s := startStack(t, stackOpts{})
	conf := s.oauthConfig("todo:read", "offline_access")

	// Metadata is generated from what is served.
	resp, err := s.Client.Get(s.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md["issuer"] != s.Issuer || md["authorization_endpoint"] != s.Issuer+"/authorize" || md["token_endpoint"] != s.Issuer+"/token" {
		t.Fatalf("metadata endpoints: %v", md)
	}
	if md["authorization_response_iss_parameter_supported"] != true {
		t.Errorf("iss parameter not advertised: %v", md)
	}
	if _, ok := md["registration_endpoint"]; ok {
		t.Errorf("registration_endpoint advertised while DCR is off")
	}

	tok := s.login(t, conf)
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token response: %+v", tok)
	}
	claims := jwtClaims(t, tok.AccessToken)
	if claims["aud"] != s.MCPURL && !containsAny(claims["aud"], s.MCPURL) {
		t.Errorf("aud = %v, want %s", claims["aud"], s.MCPURL)
	}
	if claims["iss"] != s.Issuer || claims["client_id"] != cliClientID || claims["sub"] == "" {
		t.Errorf("claims: %v", claims)
	}

	// The guard lets the token through to the MCP endpoint.
	if code := mcpStatus(t, s, tok.AccessToken); code != 200 {
		t.Fatalf("guarded MCP with a fresh token: %d", code)
	}

	// Replaying the code is refused (the code was consumed by Exchange).
	// Refresh: rotation gives a new refresh token; the old one, once the new
	// one has been used, is reuse and ends the family.
	old := tok.RefreshToken
	tok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := conf.TokenSource(s.ctx(), tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.RefreshToken == "" || fresh.RefreshToken == old || fresh.AccessToken == tok.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", fresh)
	}
	if got := jwtClaims(t, fresh.AccessToken)["aud"]; got != s.MCPURL && !containsAny(got, s.MCPURL) {
		t.Errorf("refresh lost the resource binding: aud = %v", got)
	}
	fresh.Expiry = time.Now().Add(-time.Minute)
	fresh2, err := conf.TokenSource(s.ctx(), fresh).Token()
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}

	// Revoke the current refresh token: the grant ends, refresh fails and
	// the guard refuses the access token minted from it.
	st, code, _ := postForm(t, s.Client, s.Issuer+"/revoke", url.Values{"token": {fresh2.RefreshToken}, "client_id": {cliClientID}})
	if st != 200 {
		t.Fatalf("revoke: %d %s", st, code)
	}
	st, code, _ = postForm(t, s.Client, s.Issuer+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh2.RefreshToken}, "client_id": {cliClientID}})
	if st != 400 || code != "invalid_grant" {
		t.Fatalf("refresh after revoke: %d %q, want 400 invalid_grant", st, code)
	}
	if code := mcpStatus(t, s, fresh2.AccessToken); code != 401 {
		t.Fatalf("guard with a revoked grant's token: %d, want 401", code)
	}
	// Revoking an unknown token answers 200 and changes nothing.
	st, _, _ = postForm(t, s.Client, s.Issuer+"/revoke", url.Values{"token": {"no-such-token"}, "client_id": {cliClientID}})
	if st != 200 {
		t.Errorf("revoke unknown token: %d, want 200", st)
	}
}

// TestRefusedAgainstBinary checks refusals through the real process.
func TestRefusedAgainstBinary(t *testing.T) {
	s := startStack(t, stackOpts{})
	conf := s.oauthConfig("todo:read")
	verifier := oauth2.GenerateVerifier()

	t.Run("wrong redirect_uri is an error page, never a redirect", func(t *testing.T) {
		c := *conf
		c.RedirectURL = "https://evil.example/callback"
		u := c.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))
		b := newBrowser(t, s.Client, "https://evil.example/")
		resp, err := b.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
			t.Fatalf("status %d location %q, want 400 page", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("plain PKCE is refused", func(t *testing.T) {
		u := conf.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
		b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
		res := b.authorize(t, u, aliceEmail, alicePassword)
		if res.Query.Get("error") != "invalid_request" || res.Query.Get("iss") != s.Issuer {
			t.Fatalf("got %v, want error=invalid_request with iss", res.Query)
		}
	})
	t.Run("unknown resource is invalid_target", func(t *testing.T) {
		u := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", "https://other.example/mcp"))
		b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
		res := b.authorize(t, u, aliceEmail, alicePassword)
		if res.Query.Get("error") != "invalid_target" {
			t.Fatalf("got %v, want invalid_target", res.Query)
		}
	})
	t.Run("code replay revokes what the first redemption produced", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		u := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL))
		b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
		code := b.authorize(t, u, aliceEmail, alicePassword).Query.Get("code")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "client_id": {cliClientID}, "redirect_uri": {cliRedirect}}
		st, errCode, first := postForm(t, s.Client, s.Issuer+"/token", form)
		if st != 200 {
			t.Fatalf("first redemption: %d %s", st, errCode)
		}
		st, errCode, _ = postForm(t, s.Client, s.Issuer+"/token", form)
		if st != 400 || errCode != "invalid_grant" {
			t.Fatalf("replay: %d %q, want 400 invalid_grant", st, errCode)
		}
		if got := mcpStatus(t, s, first["access_token"].(string)); got != 401 {
			t.Fatalf("token of a replayed code still accepted by the guard: %d", got)
		}
	})
	t.Run("token responses are not cacheable", func(t *testing.T) {
		resp, err := s.Client.PostForm(s.Issuer+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {cliClientID}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
		}
	})
}

func containsAny(v any, want string) bool {
	arr, ok := v.([]any)
	if !ok {
		return false
	}
	for _, x := range arr {
		if x == want {
			return true
		}
	}
	return false
}

// mcpStatus sends an MCP initialize request with the token and returns the status.
func mcpStatus(t testing.TB, s *stack, token string) int {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	req, _ := http.NewRequest("POST", s.MCPURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func encodeSeg(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
