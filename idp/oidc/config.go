package oidc

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/internal/upstream"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Config configures one upstream OpenID Provider.
type Config struct {
	// UpstreamConfig is the provider's name, button and sign-in policy
	// (LinkByEmail only when the provider asserts the email is verified).
	idp.UpstreamConfig
	// Issuer is the provider's issuer URL, exactly as its discovery document
	// states it (e.g. https://accounts.google.com). https; http only on a
	// loopback host (development and tests).
	Issuer string
	// ClientID and ClientSecret are the credentials registered at the
	// provider. The secret may be empty for a public client (PKCE only).
	ClientID     string
	ClientSecret string
	// Scopes requested; default openid, email, profile. "openid" is always
	// included.
	Scopes []string
	// RedirectURL is our callback, the URL to register at the provider:
	// idp.ProviderBaseURL(publicURL, pathPrefix, Name) + "/callback".
	// Required.
	RedirectURL string
	// Claims maps ID token (and userinfo) claims to the identity.
	Claims ClaimMapping
	// UserInfo also fetches the userinfo endpoint and fills claims the ID
	// token lacks (its sub must equal the ID token's).
	UserInfo bool
	// Store holds the single-use state tickets (the idp's store).
	Store storage.Tickets
	// HTTPClient talks to the provider (discovery, JWKS, token, userinfo).
	// Default: a client with a 15s timeout.
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives operational logs (nil: discarded; the caller injects
	// its logger, there is no global fallback).
	Logger *slog.Logger
}

// ClaimMapping names the claims that carry each attribute. Empty fields use
// the standard claim names.
type ClaimMapping struct {
	// Subject is the stable user id claim (default "sub"). Entra ID
	// operators may prefer "oid" (stable across applications).
	Subject string
	// Email (default "email").
	Email string
	// EmailVerified is a boolean (or "true") claim (default
	// "email_verified"). Entra ID sends none; "xms_edov" is its closest
	// equivalent.
	EmailVerified string
	// Name (default "name").
	Name string
	// Groups is a string or array-of-strings claim (default "groups").
	Groups string
}

const (
	defaultTimeout = 15 * time.Second
	stateTTL       = 10 * time.Minute
)

func (c *Config) validate() error {
	if err := c.UpstreamConfig.Check("oidc"); err != nil {
		return err
	}
	iu, err := url.Parse(c.Issuer)
	if err != nil || iu.Host == "" || iu.User != nil || iu.RawQuery != "" || iu.Fragment != "" || !upstream.SecureURL(iu) {
		return fmt.Errorf("oidc: %s: issuer %q must be an https URL without query or fragment (http only on loopback)", c.Name, c.Issuer)
	}
	if c.ClientID == "" {
		return fmt.Errorf("oidc: %s: client id is required", c.Name)
	}
	ru, err := url.Parse(c.RedirectURL)
	if err != nil || ru.Host == "" || ru.User != nil || ru.RawQuery != "" || ru.Fragment != "" || !upstream.SecureURL(ru) ||
		!strings.HasSuffix(ru.Path, "/login/"+c.Name+"/callback") {
		return fmt.Errorf("oidc: %s: redirect URL %q must be the https URL {public URL}{prefix}/login/%s/callback", c.Name, c.RedirectURL, c.Name)
	}
	if c.Store == nil {
		return fmt.Errorf("oidc: %s: store is required", c.Name)
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "email", "profile"}
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			return fmt.Errorf("oidc: %s: invalid scope %q", c.Name, s)
		}
	}
	if !slices.Contains(c.Scopes, "openid") {
		c.Scopes = append([]string{"openid"}, c.Scopes...)
	}
	m := &c.Claims
	m.Subject = cmpOr(m.Subject, "sub")
	m.Email = cmpOr(m.Email, "email")
	m.EmailVerified = cmpOr(m.EmailVerified, "email_verified")
	m.Name = cmpOr(m.Name, "name")
	m.Groups = cmpOr(m.Groups, "groups")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: defaultTimeout}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

var errInsecureEndpoint = errors.New("oidc: discovery endpoint is not https")

// checkEndpoint refuses a discovered endpoint that is not https (http only
// on loopback, like the issuer).
func checkEndpoint(name, s string, required bool) error {
	if s == "" && !required {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || !upstream.SecureURL(u) {
		return fmt.Errorf("%w: %s %q", errInsecureEndpoint, name, s)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
