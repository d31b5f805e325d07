package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/idp"
)

// EnterpriseIdPConfig trusts an enterprise identity provider's Identity
// Assertion JWT Authorization Grants (ID-JAG): its users get access tokens
// through the JWT bearer grant, with no browser and no consent page.
type EnterpriseIdPConfig struct {
	// Name identifies the IdP (account links, logs, audit).
	Name string `json:"name"`
	// Issuer is the IdP's exact issuer identifier (https). Its keys are
	// discovered from {issuer}/.well-known/openid-configuration (or its
	// RFC 8414 metadata) and kept while it is down.
	Issuer string `json:"issuer"`
	// JWKSURI skips discovery.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Clients are the client ids that may present this IdP's ID-JAGs
	// (configured clients with a secret or keys, or CIMD client ids).
	Clients []string `json:"clients"`
	// ScopeMap maps an IdP scope to our scopes (unset: taken as they are).
	ScopeMap map[string][]string `json:"scope_map,omitempty"`
	// Subject is by_sub (default: the IdP's sub identifies the user) or
	// by_verified_email (also link a first-time user to the account with
	// the ID-JAG's email: the IdP's emails are its directory's).
	Subject string `json:"subject,omitempty"`
	// Provision creates an account for an unknown user (default off).
	Provision bool `json:"provision,omitempty"`
	// MaxLifetime bounds an ID-JAG's exp (default 5m, at most 1h).
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`
}

// WorkloadIssuerConfig trusts the signed workload tokens of an issuer
// (Kubernetes service accounts, GitHub Actions OIDC, SPIFFE JWT-SVIDs) as
// client assertions: an agent authenticates with its platform's token and
// holds no secret.
type WorkloadIssuerConfig struct {
	// Name identifies the issuer in logs and audit records.
	Name string `json:"name"`
	// Issuer is the exact "iss" (https; its keys are discovered).
	Issuer string `json:"issuer"`
	// JWKSURI skips discovery.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Audience the token must be for (default: this server's issuer).
	Audience string `json:"audience,omitempty"`
	// SubjectClaim names the claim identifying the workload (default sub).
	SubjectClaim string `json:"subject_claim,omitempty"`
	// Clients maps a workload subject to a configured client (with
	// grant_types client_credentials, no secret, no keys).
	Clients map[string]string `json:"clients"`
	// MaxLifetime bounds a token's exp (default 1h, at most 24h).
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`
	// SingleUse refuses a second use of a token's jti (default off: the
	// platform reuses its token until it rotates it).
	SingleUse bool `json:"single_use,omitempty"`
}

// validateTrusted checks the enterprise IdPs and workload issuers that need
// no server to check (the rest is checked when the server is built).
func (a *App) validateTrusted() error {
	names := map[string]bool{}
	for _, p := range a.EnterpriseIdPs {
		if names["idp:"+p.Name] {
			return fmt.Errorf("mcp_auth: enterprise_idp %q is configured twice", p.Name)
		}
		names["idp:"+p.Name] = true
		if err := authserver.ValidateIssuerURL(p.Issuer); err != nil {
			return fmt.Errorf("mcp_auth: enterprise_idp %q: issuer: %v", p.Name, err)
		}
	}
	for _, w := range a.WorkloadIssuers {
		if names["wl:"+w.Name] {
			return fmt.Errorf("mcp_auth: workload_issuer %q is configured twice", w.Name)
		}
		names["wl:"+w.Name] = true
		if err := authserver.ValidateIssuerURL(w.Issuer); err != nil {
			return fmt.Errorf("mcp_auth: workload_issuer %q: issuer: %v", w.Name, err)
		}
	}
	return nil
}

// trustedIssuers fills the authorization server's enterprise IdPs,
// workload issuers and account mapping.
func (a *App) trustedIssuers(cfg *authserver.Config) {
	if len(a.EnterpriseIdPs) > 0 || len(a.WorkloadIssuers) > 0 {
		// As the guard's external issuers (guard.go): the last good key set
		// of each trusted issuer is kept in Caddy's storage, so that a
		// restart while the issuer is down still verifies.
		cfg.IssuerKeyStore = a.ctx.Storage()
	}
	for _, p := range a.EnterpriseIdPs {
		cfg.EnterpriseIdPs = append(cfg.EnterpriseIdPs, authserver.EnterpriseIdP{
			Name: p.Name, Issuer: p.Issuer, JWKSURI: p.JWKSURI, Clients: slices.Clone(p.Clients), ScopeMap: p.ScopeMap,
			Subject: p.Subject, Provision: p.Provision, MaxLifetime: time.Duration(p.MaxLifetime),
		})
	}
	for _, w := range a.WorkloadIssuers {
		cfg.WorkloadIssuers = append(cfg.WorkloadIssuers, authserver.WorkloadIssuer{
			Name: w.Name, Issuer: w.Issuer, JWKSURI: w.JWKSURI, Audience: w.Audience, SubjectClaim: w.SubjectClaim,
			Clients: w.Clients, MaxLifetime: time.Duration(w.MaxLifetime), SingleUse: w.SingleUse,
		})
	}
	if len(a.EnterpriseIdPs) > 0 && a.login != nil {
		login := a.login
		cfg.EnterpriseAccounts = func(ctx context.Context, id authserver.EnterpriseIdentity) (string, error) {
			sub, err := login.ResolveIdentity(ctx, idp.UpstreamPolicy{LinkByEmail: id.LinkByEmail, NoAccountCreation: !id.Provision},
				idp.ExternalIdentity{Provider: "enterprise:" + id.IdP, Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified, Name: id.Name})
			if errors.Is(err, idp.ErrNotProvisioned) {
				return "", fmt.Errorf("%w: %v", authserver.ErrAccountNotProvisioned, err)
			}
			return sub, err
		}
	}
}

// grantTypesOr is a client's grant types, defaulting to the browser flow.
func grantTypesOr(g []string) []string {
	if len(g) == 0 {
		return []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
	}
	return slices.Clone(g)
}
