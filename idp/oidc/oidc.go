package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mcpauth/caddy-mcpauth/idp"
)

// TicketKind is the storage.Ticket kind of pending OIDC logins.
const TicketKind = "oidc.state"

// CookiePrefix is the binding cookie's name before the provider name. Over
// https it carries the __Host- prefix.
const CookiePrefix = "mcpauth_oidc_"

// Purposes of the values derived from the browser's binding key.
const (
	purposeState    = "mcpauth-oidc-state-v1"
	purposeNonce    = "mcpauth-oidc-nonce-v1"
	purposeVerifier = "mcpauth-oidc-pkce-v1"
)

// retryDiscovery bounds how often a failed discovery is retried.
const retryDiscovery = 5 * time.Second

var b64 = base64.RawURLEncoding

// Provider is an upstream OpenID Provider; it implements idp.Provider.
type Provider struct {
	idp.Upstream
	cfg          Config
	callbackPath string
	binding      idp.BrowserBinding

	mu       sync.Mutex
	disc     *discovered
	lastTry  time.Time
	lastErr  error
	discover func(ctx context.Context) (*discovered, error)
}

// discovered is the provider's metadata once fetched.
type discovered struct {
	op          *gooidc.Provider
	verifier    *gooidc.IDTokenVerifier
	oauth       oauth2.Config
	issRequired bool // authorization_response_iss_parameter_supported
}

// Interface guard.
var _ idp.Provider = (*Provider)(nil)

// New validates cfg and tries discovery. A discovery failure is not fatal:
// it is logged and retried when a user next signs in (so an unreachable
// provider does not stop the server from starting), but a discovery
// document whose issuer differs from Config.Issuer is reported the same way
// and never accepted.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ru, _ := url.Parse(cfg.RedirectURL)
	p := &Provider{Upstream: idp.NewUpstream("oidc", cfg.UpstreamConfig), cfg: cfg, callbackPath: ru.Path}
	p.binding = idp.BrowserBinding{Cookie: CookiePrefix + cfg.Name, Secure: ru.Scheme == "https", SameSite: http.SameSiteLaxMode,
		TicketKind: TicketKind, TTL: stateTTL, Store: cfg.Store, Now: cfg.Now}
	if p.binding.Secure {
		p.binding.Cookie = "__Host-" + p.binding.Cookie
	}
	p.discover = p.doDiscover
	if _, err := p.metadata(ctx); err != nil {
		cfg.Logger.Warn("oidc: discovery failed; retrying at the next sign-in", "provider", cfg.Name, "issuer", cfg.Issuer, "error", err)
	}
	return p, nil
}

// RedirectURL is the callback URL to register at the provider.
func (p *Provider) RedirectURL() string { return p.cfg.RedirectURL }

// metadata returns the discovered metadata, fetching it when needed.
func (p *Provider) metadata(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disc != nil {
		return p.disc, nil
	}
	now := p.cfg.Now()
	if p.lastErr != nil && now.Sub(p.lastTry) < retryDiscovery && now.Sub(p.lastTry) >= 0 {
		return nil, p.lastErr
	}
	p.lastTry = now
	d, err := p.discover(ctx)
	if err != nil {
		p.lastErr = err
		return nil, err
	}
	p.disc, p.lastErr = d, nil
	return d, nil
}

func (p *Provider) doDiscover(ctx context.Context) (*discovered, error) {
	ctx, cancel := context.WithTimeout(gooidc.ClientContext(ctx, p.cfg.HTTPClient), defaultTimeout)
	defer cancel()
	// go-oidc refuses a document whose issuer is not exactly cfg.Issuer.
	op, err := gooidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: %s: discovery: %w", p.cfg.Name, err)
	}
	var meta struct {
		AuthURL     string `json:"authorization_endpoint"`
		TokenURL    string `json:"token_endpoint"`
		JWKSURL     string `json:"jwks_uri"`
		UserInfoURL string `json:"userinfo_endpoint"`
		ISSParam    bool   `json:"authorization_response_iss_parameter_supported"`
	}
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("oidc: %s: discovery: %w", p.cfg.Name, err)
	}
	for _, e := range []struct {
		name, url string
		required  bool
	}{{"authorization_endpoint", meta.AuthURL, true}, {"token_endpoint", meta.TokenURL, true}, {"jwks_uri", meta.JWKSURL, true}, {"userinfo_endpoint", meta.UserInfoURL, p.cfg.UserInfo}} {
		if err := checkEndpoint(e.name, e.url, e.required); err != nil {
			return nil, fmt.Errorf("oidc: %s: %w", p.cfg.Name, err)
		}
	}
	// The key set fetches with our client; go-oidc ignores the context's
	// cancellation for it.
	verifier := op.VerifierContext(gooidc.ClientContext(context.Background(), p.cfg.HTTPClient), &gooidc.Config{
		ClientID: p.cfg.ClientID,
		Now:      p.cfg.Now,
	})
	return &discovered{
		op:       op,
		verifier: verifier,
		oauth: oauth2.Config{
			ClientID:     p.cfg.ClientID,
			ClientSecret: p.cfg.ClientSecret,
			Endpoint:     op.Endpoint(),
			RedirectURL:  p.cfg.RedirectURL,
			Scopes:       p.cfg.Scopes,
		},
		issRequired: meta.ISSParam,
	}, nil
}

// pending is the value of a state ticket. It holds nothing secret: state,
// nonce and PKCE verifier are derived from the browser's cookie.
type pending struct {
	Attempt  string    `json:"attempt"`
	Provider string    `json:"provider"`
	Created  time.Time `json:"created"`
}

func derive(key []byte, purpose string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return b64.EncodeToString(m.Sum(nil))
}

// Begin implements idp.Provider: it binds a fresh key to the browser and
// redirects (303) to the provider's authorization endpoint.
func (p *Provider) Begin(w http.ResponseWriter, r *http.Request, a idp.Attempt) error {
	if a.BaseURL+"/callback" != p.cfg.RedirectURL {
		return fmt.Errorf("oidc: %s: redirect URL %q does not match the hosted login's %q", p.cfg.Name, p.cfg.RedirectURL, a.BaseURL+"/callback")
	}
	d, err := p.metadata(r.Context())
	if err != nil {
		return err
	}
	v, err := json.Marshal(pending{Attempt: a.ID, Provider: p.cfg.Name, Created: p.cfg.Now()})
	if err != nil {
		return fmt.Errorf("oidc: ticket: %w", err)
	}
	key, err := p.binding.Begin(r.Context(), w, v)
	if err != nil {
		return fmt.Errorf("oidc: %w", err)
	}
	opts := []oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(derive(key, purposeVerifier)),
		gooidc.Nonce(derive(key, purposeNonce)),
	}
	if a.LoginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", a.LoginHint))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Location", d.oauth.AuthCodeURL(derive(key, purposeState), opts...))
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// Handler implements idp.Provider.
func (p *Provider) Handler(c idp.Completer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != p.callbackPath {
			c.Error(w, r, http.StatusNotFound, "not_found", "This page does not exist.")
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			c.Error(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "This request method is not supported here.")
			return
		}
		p.callback(w, r, c)
	})
}

// callback verifies the authorization response and completes the login.
func (p *Provider) callback(w http.ResponseWriter, r *http.Request, c idp.Completer) {
	ctx := r.Context()
	fail := func(attempt, reason string, err error) {
		p.cfg.Logger.Warn("oidc: upstream login refused", "provider", p.cfg.Name, "reason", reason, "error", err)
		c.FailUpstream(w, r, attempt, reason)
	}
	// The binding cookie first: without it nothing else is trusted.
	key, v, err := p.binding.Take(w, r)
	switch {
	case errors.Is(err, idp.ErrBindingMissing):
		fail("", "state_cookie_missing", err)
		return
	case errors.Is(err, idp.ErrBindingUnknown):
		fail("", "state_unknown", err)
		return
	case err != nil:
		fail("", "store_error", err)
		return
	}
	var pend pending
	if err := json.Unmarshal(v, &pend); err != nil || pend.Provider != p.cfg.Name {
		fail("", "state_unknown", err)
		return
	}
	params, err := parseCallback(r.URL.RawQuery)
	if err != nil {
		fail(pend.Attempt, "response_malformed", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(params.State), []byte(derive(key, purposeState))) != 1 {
		fail(pend.Attempt, "state_mismatch", nil)
		return
	}
	d, err := p.metadata(ctx)
	if err != nil {
		fail(pend.Attempt, idp.ReasonDiscoveryFailed, err)
		return
	}
	// RFC 9207: the issuer identifier in the response, when sent (and
	// always when the provider says it sends it), must be ours.
	if params.Iss != "" && params.Iss != p.cfg.Issuer || params.Iss == "" && d.issRequired {
		fail(pend.Attempt, "issuer_mismatch", nil)
		return
	}
	if params.Error != "" {
		fail(pend.Attempt, upstreamErrorReason(params.Error), nil)
		return
	}
	if params.Code == "" {
		fail(pend.Attempt, "code_missing", nil)
		return
	}
	xctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, p.cfg.HTTPClient), defaultTimeout)
	defer cancel()
	tok, err := d.oauth.Exchange(xctx, params.Code, oauth2.VerifierOption(derive(key, purposeVerifier)))
	if err != nil {
		// An OAuth error answer is a refusal; no answer (or a 5xx) is an
		// outage of the provider.
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response != nil && re.Response.StatusCode >= 500 {
			fail(pend.Attempt, idp.ReasonTokenEndpointUnreachable, err)
			return
		}
		fail(pend.Attempt, "token_exchange_failed", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail(pend.Attempt, "id_token_missing", nil)
		return
	}
	idt, err := d.verifier.Verify(xctx, raw)
	if err != nil {
		fail(pend.Attempt, verifyReason(err), err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(derive(key, purposeNonce))) != 1 {
		fail(pend.Attempt, "nonce_mismatch", nil)
		return
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		fail(pend.Attempt, "claims_invalid", err)
		return
	}
	// OpenID Connect Core §3.1.3.7 (4, 5): with several audiences azp must
	// be present; when present it must be our client id.
	azp, hasAzp := claims["azp"]
	if hasAzp && azp != p.cfg.ClientID || !hasAzp && len(idt.Audience) > 1 {
		fail(pend.Attempt, "azp_mismatch", nil)
		return
	}
	if p.cfg.UserInfo {
		if err := p.mergeUserInfo(xctx, d, tok, idt.Subject, claims); err != nil {
			fail(pend.Attempt, "userinfo_failed", err)
			return
		}
	}
	ext, err := mapClaims(p.cfg.Name, p.cfg.Claims, claims)
	if err != nil {
		fail(pend.Attempt, "claims_invalid", err)
		return
	}
	c.CompleteUpstream(w, r, pend.Attempt, ext)
}

// mergeUserInfo fills claims the ID token lacks from the userinfo endpoint.
func (p *Provider) mergeUserInfo(ctx context.Context, d *discovered, tok *oauth2.Token, sub string, claims map[string]any) error {
	ui, err := d.op.UserInfo(gooidc.ClientContext(ctx, p.cfg.HTTPClient), oauth2.StaticTokenSource(tok))
	if err != nil {
		return err
	}
	if ui.Subject != sub {
		return errors.New("oidc: userinfo subject differs from the id token's")
	}
	extra := map[string]any{}
	if err := ui.Claims(&extra); err != nil {
		return err
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

// verifyReason classifies a go-oidc verification error for the audit log.
func verifyReason(err error) string {
	var exp *gooidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &exp):
		return "id_token_expired"
	case strings.Contains(msg, "expected audience"):
		return "audience_mismatch"
	case strings.Contains(msg, "issued by a different provider"):
		return "issuer_mismatch"
	case strings.Contains(msg, "signature"), strings.Contains(msg, "signing"):
		return "signature_invalid"
	}
	return "id_token_invalid"
}
