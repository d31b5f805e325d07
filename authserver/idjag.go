package authserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/audit"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Enterprise-managed authorization (requirement 24; ext-auth
// enterprise-managed-authorization, draft-ietf-oauth-identity-assertion-
// authz-grant): an enterprise IdP issues an Identity Assertion JWT
// Authorization Grant (ID-JAG) to a client through RFC 8693 token exchange,
// and the client trades it here with the JWT bearer grant (RFC 7523 §2.1)
// for an access token. No browser and no consent page: the enterprise
// granted it.

// ID-JAG constants.
const (
	// IDJAGType is the JOSE typ of an ID-JAG.
	IDJAGType = "oauth-id-jag+jwt"
	// GrantProfileIDJAG is listed in authorization_grant_profiles_supported.
	GrantProfileIDJAG = "urn:ietf:params:oauth:grant-profile:id-jag"
	// DefaultIDJAGMaxLifetime bounds exp - now of an ID-JAG.
	DefaultIDJAGMaxLifetime = 5 * time.Minute
)

// Enterprise account mapping modes.
const (
	// SubjectBySub maps (IdP, sub) to an account, nothing else.
	SubjectBySub = "by_sub"
	// SubjectByVerifiedEmail also links a first-time (IdP, sub) to the
	// account with the ID-JAG's email: the operator vouches that this
	// IdP's email claim is its directory's, verified address.
	SubjectByVerifiedEmail = "by_verified_email"
)

// EnterpriseIdP is an enterprise identity provider whose ID-JAGs are
// accepted.
type EnterpriseIdP struct {
	// Name identifies the IdP in account links ("enterprise:<name>"), logs
	// and audit records.
	Name string
	// Issuer is the exact "iss"; keys are discovered from its metadata
	// unless JWKSURI is set.
	Issuer  string
	JWKSURI string
	// Clients are the client ids that may present this IdP's ID-JAGs (the
	// clients the enterprise admin registered for the MCP server).
	Clients []string
	// ScopeMap translates the ID-JAG's scopes to ours (an IdP scope to one
	// or more of ours). Nil: the scopes are taken as they are.
	ScopeMap map[string][]string
	// Subject is SubjectBySub (default) or SubjectByVerifiedEmail.
	Subject string
	// Provision creates an account for an enterprise user not yet known
	// (off by default: the user must exist or be linked).
	Provision bool
	// MaxLifetime bounds how far ahead exp may be (default 5 min).
	MaxLifetime time.Duration
}

// EnterpriseIdentity is the user an accepted ID-JAG names.
type EnterpriseIdentity struct {
	// IdP is the EnterpriseIdP's Name.
	IdP     string
	Subject string
	// Email and EmailVerified, as the ID-JAG carries them.
	Email         string
	EmailVerified bool
	Name          string
	// LinkByEmail and Provision are the IdP's policy.
	LinkByEmail bool
	Provision   bool
}

// ErrAccountNotProvisioned is returned by an EnterpriseAccounts function
// for a user who has no account and may not get one.
var ErrAccountNotProvisioned = errors.New("authserver: enterprise user has no account")

// validateEnterpriseIdPs checks and normalizes cfg.EnterpriseIdPs.
func validateEnterpriseIdPs(ps []EnterpriseIdP, cfg Config) error {
	seen := map[string]bool{}
	for _, w := range cfg.WorkloadIssuers {
		seen[w.Issuer] = true
	}
	names := map[string]bool{}
	for i := range ps {
		p := &ps[i]
		if p.Name == "" || strings.ContainsAny(p.Name, " :/") || names[p.Name] {
			return fmt.Errorf("authserver: config: enterprise idp name %q is empty, repeated or has spaces, ':' or '/'", p.Name)
		}
		names[p.Name] = true
		if err := ValidateIssuerURL(p.Issuer); err != nil {
			return fmt.Errorf("authserver: config: enterprise idp %q: issuer: %w", p.Name, err)
		}
		if p.JWKSURI != "" {
			if err := checkIssuerURL(p.JWKSURI); err != nil {
				return fmt.Errorf("authserver: config: enterprise idp %q: jwks_uri: %w", p.Name, err)
			}
		}
		if seen[p.Issuer] || p.Issuer == cfg.Issuer {
			return fmt.Errorf("authserver: config: issuer %q is trusted twice", p.Issuer)
		}
		seen[p.Issuer] = true
		if len(p.Clients) == 0 {
			return fmt.Errorf("authserver: config: enterprise idp %q: name the clients that may use it", p.Name)
		}
		switch p.Subject {
		case "":
			p.Subject = SubjectBySub
		case SubjectBySub, SubjectByVerifiedEmail:
		default:
			return fmt.Errorf("authserver: config: enterprise idp %q: subject must be %s or %s", p.Name, SubjectBySub, SubjectByVerifiedEmail)
		}
		for from, to := range p.ScopeMap {
			if !validScopeToken(from) || len(to) == 0 {
				return fmt.Errorf("authserver: config: enterprise idp %q: scope_map %q: want an IdP scope and our scopes", p.Name, from)
			}
			for _, sc := range to {
				if !contains(cfg.Scopes, sc) {
					return fmt.Errorf("authserver: config: enterprise idp %q: scope_map %q: scope %q is not offered", p.Name, from, sc)
				}
			}
		}
		switch {
		case p.MaxLifetime == 0:
			p.MaxLifetime = DefaultIDJAGMaxLifetime
		case p.MaxLifetime < 0 || p.MaxLifetime > time.Hour:
			return fmt.Errorf("authserver: config: enterprise idp %q: max lifetime out of range (0, 1h]", p.Name)
		}
	}
	if len(ps) > 0 && cfg.EnterpriseAccounts == nil {
		return errors.New("authserver: config: enterprise idps need an account mapper (hosted login)")
	}
	return nil
}

// enterpriseIdP returns the trusted IdP whose issuer is iss.
func (s *Server) enterpriseIdP(iss string) (*EnterpriseIdP, KeySource) {
	for i := range s.cfg.EnterpriseIdPs {
		if p := &s.cfg.EnterpriseIdPs[i]; p.Issuer == iss {
			return p, s.issuerKeys[iss]
		}
	}
	return nil, nil
}

// idjagRefused audits a refused ID-JAG of an authenticated client (each is
// recorded: the client proved who it is) and returns e.
func (s *Server) idjagRefused(r *http.Request, client storage.Client, idp string, e *oauth.Error) *oauth.Error {
	detail := map[string]string{"reason": string(oauth.ReasonOf(e)), "check": sanitizeErrorText(e.Description)}
	if idp != "" {
		detail["idp"] = idp
	}
	s.emit(r.Context(), r, storage.AuditEvent{Type: audit.IDJAGRefused, Outcome: e.Code, ClientID: client.ID, Detail: detail})
	return e
}

// jwtBearer serves the JWT bearer grant with an ID-JAG. Checks, in order:
// assertion present; its issuer a trusted IdP (invalid_grant); the client
// one the IdP may serve (unauthorized_client); typ oauth-id-jag+jwt,
// signature, aud = our issuer, exp within the IdP's max lifetime, iat
// present and not in the future, jti once across instances (all
// invalid_grant); client_id = the authenticated client (invalid_grant);
// resource present and served here (invalid_target), equal to a sent
// resource parameter; scopes = requested ∩ ID-JAG (mapped) ∩ client's;
// the user mapped to an account (invalid_grant when not provisioned).
func (s *Server) jwtBearer(r *http.Request, client storage.Client, method string, form url.Values) (*tokenResponse, *oauth.Error) {
	assertion := form.Get("assertion")
	if assertion == "" {
		return nil, oauth.ErrInvalidRequest("assertion is required")
	}
	_, unverified, err := ParseAssertion(assertion)
	if err != nil {
		return nil, s.idjagRefused(r, client, "", oauth.ErrInvalidGrant("the assertion is not a valid ID-JAG").Because(oauth.ReasonIDJAGInvalid))
	}
	iss, _ := stringClaim(unverified, "iss")
	idp, keys := s.enterpriseIdP(iss)
	if idp == nil {
		return nil, s.idjagRefused(r, client, "", oauth.ErrInvalidGrant("the ID-JAG's issuer is not a trusted enterprise IdP").Because(oauth.ReasonIDJAGUntrustedIssuer))
	}
	if !contains(idp.Clients, client.ID) || method == oauth.AuthMethodNone {
		return nil, s.idjagRefused(r, client, idp.Name, oauth.ErrUnauthorizedClient("this client may not use the ID-JAGs of this IdP").Because(oauth.ReasonIDJAGWrongClient))
	}
	claims, err := VerifyAssertion(r.Context(), assertion, AssertionPolicy{
		Issuer:      idp.Issuer,
		Audiences:   []string{s.cfg.Issuer},
		Type:        IDJAGType,
		MaxLifetime: idp.MaxLifetime,
		Keys:        keys,
		Replays:     s.store,
		Now:         s.cfg.Now,
	})
	if err != nil {
		reason := oauth.ReasonIDJAGInvalid
		var ae *AssertionError
		if errors.As(err, &ae) && ae.Reason == "assertion replayed" {
			reason = oauth.ReasonIDJAGReplayed
		}
		e := s.trustedAssertionError(err, idp.Name, func(d string) *oauth.Error { return oauth.ErrInvalidGrant("invalid ID-JAG: " + d) }, reason)
		return nil, s.idjagRefused(r, client, idp.Name, e)
	}
	c := claims.Claims
	cid, ok := stringClaim(c, "client_id")
	switch {
	case claims.IssuedAt.IsZero():
		return nil, s.idjagRefused(r, client, idp.Name, oauth.ErrInvalidGrant("invalid ID-JAG: iat is required").Because(oauth.ReasonIDJAGInvalid))
	case !ok || cid == "":
		return nil, s.idjagRefused(r, client, idp.Name, oauth.ErrInvalidGrant("invalid ID-JAG: client_id is required").Because(oauth.ReasonIDJAGInvalid))
	case cid != client.ID:
		return nil, s.idjagRefused(r, client, idp.Name, oauth.ErrInvalidGrant("the ID-JAG was issued to another client").Because(oauth.ReasonIDJAGWrongClient))
	}
	resource, ok := stringClaim(c, "resource")
	if !ok || resource == "" {
		return nil, s.idjagRefused(r, client, idp.Name, oauth.ErrInvalidGrant("invalid ID-JAG: resource is required").Because(oauth.ReasonIDJAGInvalid))
	}
	aud, e := s.cfg.Resources.Resolve([]string{resource}, client)
	if e != nil {
		return nil, s.idjagRefused(r, client, idp.Name, e)
	}
	if sent := form["resource"]; len(sent) > 0 {
		if _, e := matchBound(sent, aud); e != nil {
			return nil, s.idjagRefused(r, client, idp.Name, e)
		}
	}
	scopes, e := s.idjagScopes(idp, client, c, form)
	if e != nil {
		return nil, s.idjagRefused(r, client, idp.Name, e)
	}
	email, _ := stringClaim(c, "email")
	name, _ := stringClaim(c, "name")
	verified := idp.Subject == SubjectByVerifiedEmail && email != ""
	if raw, ok := c["email_verified"]; ok && string(raw) != "true" {
		verified = false // the IdP says it is not verified
	}
	subject, err := s.cfg.EnterpriseAccounts(r.Context(), EnterpriseIdentity{
		IdP: idp.Name, Subject: claims.Subject, Email: email, EmailVerified: verified, Name: name,
		LinkByEmail: idp.Subject == SubjectByVerifiedEmail, Provision: idp.Provision,
	})
	if err != nil {
		if errors.Is(err, ErrAccountNotProvisioned) {
			return nil, s.idjagRefused(r, client, idp.Name, oauth.ErrInvalidGrant("the enterprise user has no account here").Because(oauth.ReasonAccountUnmapped))
		}
		return nil, s.storageError("enterprise account", err)
	}
	return s.issueMachineToken(r, client, subject, scopes, aud, map[string]string{"grant_type": oauth.GrantJWTBearer, "idp": idp.Name,
		"grant_profile": GrantProfileIDJAG})
}

// idjagScopes is the intersection of the requested scopes (all of the
// ID-JAG's when none are requested), the ID-JAG's scopes through the IdP's
// scope map, and the client's allowed scopes (offered by the server;
// offline_access never). An empty result is invalid_scope.
func (s *Server) idjagScopes(idp *EnterpriseIdP, client storage.Client, c map[string]json.RawMessage, form url.Values) ([]string, *oauth.Error) {
	raw, ok := stringClaim(c, "scope")
	if !ok {
		return nil, oauth.ErrInvalidGrant("invalid ID-JAG: scope must be a string").Because(oauth.ReasonIDJAGInvalid)
	}
	var granted []string
	for _, sc := range strings.Fields(raw) {
		mapped := []string{sc}
		if idp.ScopeMap != nil {
			mapped = idp.ScopeMap[sc]
		}
		for _, m := range mapped {
			if !contains(granted, m) {
				granted = append(granted, m)
			}
		}
	}
	requested, e := parseScopeParam(form)
	if e != nil {
		return nil, e
	}
	if len(requested) == 0 {
		requested = granted
	}
	var out []string
	for _, sc := range requested {
		if sc != ScopeOfflineAccess && contains(granted, sc) && contains(s.cfg.Scopes, sc) && (len(client.Scopes) == 0 || contains(client.Scopes, sc)) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, oauth.ErrInvalidScope("no requested scope is granted by both the ID-JAG and this client's allowed scopes").Because(oauth.ReasonScopeInvalid)
	}
	return out, nil
}

// buildIssuerKeys records the clients bound to workload issuers (their key
// sources start later, see startIssuerKeys in issuerkeys.go).
func (s *Server) buildIssuerKeys() error {
	s.workloadClients = map[string]bool{}
	for _, w := range s.cfg.WorkloadIssuers {
		for _, id := range w.Clients {
			s.workloadClients[id] = true
		}
	}
	return nil
}
