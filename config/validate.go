package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/idp"
)

// positionRE matches an error that already names its Caddyfile line.
var positionRE = regexp.MustCompile(`^[^\s:]+:\d+: `)

// Positioned prefixes a configuration error with the mcp_auth block's
// Caddyfile line when it names none of its own (a client's or a user's
// errors name theirs).
func (a *App) Positioned(err error) error {
	if a.Source != "" && !positionRE.MatchString(err.Error()) {
		err = fmt.Errorf("%s%w", at(a.Source), err)
	}
	return err
}

// Validate checks the configuration's invariants (after Resolve and
// SetDefaults). An error of a client names its Caddyfile line; Positioned
// adds the mcp_auth block's to the others.
func (a *App) Validate() error {
	if err := a.DPoP.validate(); err != nil {
		return err
	}
	if a.Issuer == "" {
		return errors.New("mcp_auth: issuer is required (the exact URL clients see, e.g. https://auth.example.com)")
	}
	if err := authserver.ValidateIssuer(a.Issuer); err != nil {
		return fmt.Errorf("mcp_auth: %w", err)
	}
	if a.SharedLimits && a.Storage.Backend != "postgres" {
		return errors.New("mcp_auth: shared_limits needs storage postgres (with bbolt there is one instance per file, so every limit is already whole)")
	}
	if a.ClientIPv4Prefix < 0 || a.ClientIPv4Prefix > 32 {
		return fmt.Errorf("mcp_auth: client_ipv4_prefix %d must be between 1 and 32", a.ClientIPv4Prefix)
	}
	if a.ClientIPv6Prefix < 0 || a.ClientIPv6Prefix > 128 {
		return fmt.Errorf("mcp_auth: client_ipv6_prefix %d must be between 1 and 128", a.ClientIPv6Prefix)
	}
	switch a.SigningAlgorithm {
	case "ES256", "EdDSA", "RS256":
	default:
		return fmt.Errorf("mcp_auth: signing_algorithm %q: use ES256, EdDSA or RS256", a.SigningAlgorithm)
	}
	if err := a.validateKEK(); err != nil {
		return err
	}
	if a.CodeLifetime < 0 || time.Duration(a.CodeLifetime) > authserver.MaxCodeTTL {
		return fmt.Errorf("mcp_auth: code_lifetime must be at most %s", authserver.MaxCodeTTL)
	}
	if g := a.RefreshGrace; g != nil && (*g < 0 || time.Duration(*g) > authserver.MaxRefreshGrace) {
		return fmt.Errorf("mcp_auth: refresh_grace must be from 0 (strict rotation) to %s", authserver.MaxRefreshGrace)
	}
	seen := map[string]bool{}
	for _, c := range a.Clients {
		if c.ID == "" {
			return errors.New("mcp_auth: a client needs an id")
		}
		if oauth.IsCIMDClientID(c.ID) || strings.HasPrefix(c.ID, "http://") {
			return fmt.Errorf("%smcp_auth: client %q: owned client ids must not be URLs (those are CIMD clients)", at(c.Source), c.ID)
		}
		if seen[c.ID] {
			return fmt.Errorf("%smcp_auth: client %q is configured twice", at(c.Source), c.ID)
		}
		seen[c.ID] = true
		for _, g := range c.GrantTypes {
			if g != oauth.GrantAuthorizationCode && g != oauth.GrantRefreshToken && g != oauth.GrantClientCredentials {
				return fmt.Errorf("%smcp_auth: client %q: grant_types %q: use authorization_code, refresh_token or client_credentials", at(c.Source), c.ID, g)
			}
		}
		if len(c.RedirectURIs) == 0 && slices.Contains(grantTypesOr(c.GrantTypes), oauth.GrantAuthorizationCode) {
			return fmt.Errorf("%smcp_auth: client %q needs at least one redirect_uri", at(c.Source), c.ID)
		}
		for _, ru := range c.RedirectURIs {
			if _, err := oauth.CheckRedirectURI(ru, oauth.OwnedRedirects); err != nil {
				return fmt.Errorf("%smcp_auth: client %q: %w", at(c.Source), c.ID, err)
			}
		}
		switch {
		case c.Secret != "" && (c.JWKSURI != "" || c.JWKSFile != ""):
			return fmt.Errorf("%smcp_auth: client %q: use secret or keys (jwks_uri, jwks_file), not both", at(c.Source), c.ID)
		case c.JWKSURI != "" && c.JWKSFile != "":
			return fmt.Errorf("%smcp_auth: client %q: use jwks_uri or jwks_file, not both", at(c.Source), c.ID)
		case c.JWKSURI != "" && !strings.HasPrefix(c.JWKSURI, "https://"):
			return fmt.Errorf("%smcp_auth: client %q: jwks_uri must be an https URL", at(c.Source), c.ID)
		}
	}
	if err := a.validateTrusted(); err != nil {
		return err
	}
	if a.CIMD != nil {
		switch a.CIMD.Policy {
		case "", "trusted", "any":
		default:
			return fmt.Errorf("mcp_auth: cimd policy %q: use trusted or any", a.CIMD.Policy)
		}
		for name, r := range map[string]*CIMDRate{"host_rate": a.CIMD.HostRate, "domain_rate": a.CIMD.DomainRate, "requester_rate": a.CIMD.RequesterRate} {
			if r != nil && (r.Burst < 1 || r.Interval <= 0) {
				return fmt.Errorf("mcp_auth: cimd %s: burst must be at least 1 and interval positive", name)
			}
		}
		if a.CIMD.Timeout < 0 || a.CIMD.UntrustedTimeout < 0 {
			return errors.New("mcp_auth: cimd timeouts must not be negative")
		}
		if err := a.validateCIMDPolicies(); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	for _, n := range a.Login.ProviderNames() {
		if !idp.ValidProviderName(n) {
			return fmt.Errorf("mcp_auth: provider name %q: use 1-32 lower-case letters, digits and -", n)
		}
		if names[n] {
			return fmt.Errorf("mcp_auth: provider %q is configured twice", n)
		}
		names[n] = true
	}
	for domain, p := range a.Login.HomeRealm {
		if !names[p] {
			return fmt.Errorf("mcp_auth: home_realm %s names unknown provider %q", domain, p)
		}
	}
	switch a.Login.Signup {
	case "", "off", "open":
	case "domains":
		if len(a.Login.SignupDomains) == 0 {
			return errors.New("mcp_auth: signup domains needs at least one domain")
		}
	default:
		return fmt.Errorf("mcp_auth: signup %q: use off, open or domains", a.Login.Signup)
	}
	if s := a.Login.SMTP; s != nil {
		if s.Host == "" || s.From == "" {
			return errors.New("mcp_auth: login smtp needs host and from")
		}
		switch s.TLS {
		case "", "starttls", "tls", "none":
		default:
			return fmt.Errorf("mcp_auth: login smtp tls %q: use starttls, tls or none", s.TLS)
		}
	}
	return nil
}

// validateCIMDPolicies checks the per-client and per-host CIMD policies
// with the authorization server's rules.
func (a *App) validateCIMDPolicies() error {
	for id, p := range a.CIMD.Clients {
		if p == nil {
			return fmt.Errorf("mcp_auth: cimd client %q: empty policy", id)
		}
		if err := cimd.ValidClientIDURL(id); err != nil && !a.CIMD.InsecureAllowLoopback {
			return fmt.Errorf("mcp_auth: cimd client %q: %v", id, err)
		}
	}
	for host, p := range a.CIMD.ClientHosts {
		if p == nil {
			return fmt.Errorf("mcp_auth: cimd client_host %q: empty policy", host)
		}
	}
	offered := append(slices.Clone(a.Scopes), authserver.ScopeOfflineAccess)
	if err := a.cimdPolicy().Validate(offered); err != nil {
		return fmt.Errorf("mcp_auth: %w", err)
	}
	return nil
}

// at prefixes an error with a Caddyfile position ("" without one).
func at(source string) string {
	if source == "" {
		return ""
	}
	return source + ": "
}

// envPlaceholder matches {env.NAME} placeholders.
var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

// unsetVars names the environment variables of raw's {env.*} placeholders
// that are not set (" (environment variable X is not set)"), or "".
func unsetVars(raw string) string {
	var names []string
	for _, m := range envPlaceholder.FindAllStringSubmatch(raw, -1) {
		if v, ok := os.LookupEnv(m[1]); !ok || strings.TrimSpace(v) == "" {
			names = append(names, m[1])
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return " (environment variable " + names[0] + " is not set)"
	}
	return " (environment variables " + strings.Join(names, ", ") + " are not set)"
}
