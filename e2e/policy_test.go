package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/oauth2"
)

// TestCIMDPerClientLifetime: a CIMD client with a per-client 24h
// access-token lifetime (cimd { client <url> { access_token_lifetime 24h } })
// gets expires_in 86400, on code exchange and on refresh, and the guard
// accepts its token; another CIMD client gets the default hour.
func TestCIMDPerClientLifetime(t *testing.T) {
	long, short := startCIMDServer(t), startCIMDServer(t)
	a, err := os.ReadFile(long.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(short.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "cas.pem")
	if err := os.WriteFile(bundle, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOpts{extraApp: fmt.Sprintf(`cimd {
			policy any
			insecure_allow_loopback
			ca_bundle %s
			client %s {
				access_token_lifetime 24h
			}
		}`, bundle, long.URL)})
	for _, c := range []struct {
		name     string
		clientID string
		want     float64
	}{
		{"per-client 24h", long.URL, 86400},
		{"default", short.URL, 3600},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := s.oauthConfig("todo:read", "offline_access")
			conf.ClientID = c.clientID
			tok := s.login(t, conf)
			if got := tok.Extra("expires_in"); got != c.want {
				t.Fatalf("expires_in = %v, want %v", got, c.want)
			}
			cl := jwtClaims(t, tok.AccessToken)
			if d := cl["exp"].(float64) - cl["iat"].(float64); d != c.want {
				t.Fatalf("exp - iat = %v, want %v", d, c.want)
			}
			if st := mcpStatus(t, s, tok.AccessToken); st != 200 {
				t.Fatalf("the guard answered %d to the token", st)
			}
			st, _, body := postForm(t, s.Client, s.Issuer+"/token", map[string][]string{
				"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {c.clientID}})
			if st != 200 || body["expires_in"] != c.want {
				t.Fatalf("refresh: %d %v, want expires_in %v", st, body, c.want)
			}
		})
	}
}

// TestDCRReRegistrationSkipsConsent: a DCR client that registers again with
// the same metadata (https redirect URIs, as claude.ai does) gets a code for
// the same signed-in user without a consent page; one with a loopback
// redirect is asked again.
func TestDCRReRegistrationSkipsConsent(t *testing.T) {
	s := startStack(t, stackOpts{extraApp: "dcr"})
	for _, c := range []struct {
		name, redirect string
		wantConsent    bool
	}{
		{"https redirect: consent reused", "https://claude.ai/api/mcp/auth_callback", false},
		{"loopback redirect: asked again", "http://127.0.0.1:5555/callback", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			meta := fmt.Sprintf(`{"client_name":"Claude","software_id":"claude-e2e","redirect_uris":[%q],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`, c.redirect)
			br := newBrowser(t, s.Client, c.redirect)
			br.remember = true
			authorize := func(clientID string) authResult {
				conf := s.oauthConfig("todo:read")
				conf.ClientID, conf.RedirectURL = clientID, c.redirect
				verifier := oauth2.GenerateVerifier()
				res := br.authorize(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL)), aliceEmail, alicePassword)
				if res.Query.Get("code") == "" {
					t.Fatalf("no code: %v", res.Query)
				}
				tok, err := conf.Exchange(s.ctx(), res.Query.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", s.MCPURL))
				if err != nil {
					t.Fatalf("exchange: %v", err)
				}
				if st := mcpStatus(t, s, tok.AccessToken); st != 200 {
					t.Fatalf("the guard answered %d", st)
				}
				return res
			}
			register := func() string {
				st, _, reg := postFormJSON(t, s, meta)
				if st != 201 {
					t.Fatalf("register: %d %v", st, reg)
				}
				return reg["client_id"].(string)
			}
			first := authorize(register())
			if !slices.Contains(first.Pages, "/authorize") {
				t.Fatalf("the first registration got no consent page: %v", first.Pages)
			}
			second := authorize(register())
			if got := slices.Contains(second.Pages, "/authorize"); got != c.wantConsent {
				t.Fatalf("consent page on re-registration: %v, want %v (pages %v)", got, c.wantConsent, second.Pages)
			}
		})
	}
}
