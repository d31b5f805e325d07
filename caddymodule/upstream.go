package caddymodule

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/oidc"
	"github.com/mcpauth/caddy-mcpauth/idp/saml"
)

// OIDCProvider is an upstream OpenID Connect provider shown on the login
// page. Its redirect URI is {issuer origin}/login/{name}/callback.
type OIDCProvider struct {
	// Name is the provider's id in URLs (lower-case letters, digits, -).
	Name string `json:"name"`
	// DisplayName is the button's label.
	DisplayName string `json:"display_name,omitempty"`
	// IconURL is the button's icon.
	IconURL string `json:"icon_url,omitempty"`
	// Issuer is the provider's issuer (https; http only on loopback).
	Issuer string `json:"issuer"`
	// ClientID and ClientSecret are our client at the provider (use {env.*}).
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes requested (default openid email profile).
	Scopes []string `json:"scopes,omitempty"`
	// Claim names for subject, email, email_verified, name and groups.
	ClaimSubject       string `json:"claim_subject,omitempty"`
	ClaimEmail         string `json:"claim_email,omitempty"`
	ClaimEmailVerified string `json:"claim_email_verified,omitempty"`
	ClaimName          string `json:"claim_name,omitempty"`
	ClaimGroups        string `json:"claim_groups,omitempty"`
	// UserInfo also reads the userinfo endpoint.
	UserInfo bool `json:"userinfo,omitempty"`
	// Allow rules: any that is set must match.
	AllowEmailDomains []string `json:"allow_email_domains,omitempty"`
	AllowGroups       []string `json:"allow_groups,omitempty"`
	AllowSubjects     []string `json:"allow_subjects,omitempty"`
	// LinkByEmail links to an existing local account with the same verified email.
	LinkByEmail bool `json:"link_by_email,omitempty"`
	// NoAccountCreation refuses users who have no linked local account.
	NoAccountCreation bool `json:"no_account_creation,omitempty"`
}

// SAMLProvider is an upstream SAML 2.0 identity provider. Our SP entity id is
// {issuer origin}/login/{name}/metadata (also where our metadata is served)
// and the ACS is {issuer origin}/login/{name}/acs (HTTP-POST).
type SAMLProvider struct {
	// Name is the provider's id in URLs.
	Name string `json:"name"`
	// DisplayName is the button's label.
	DisplayName string `json:"display_name,omitempty"`
	// IconURL is the button's icon.
	IconURL string `json:"icon_url,omitempty"`
	// IdPMetadataURL or IdPMetadataFile give the IdP's metadata.
	IdPMetadataURL  string `json:"idp_metadata_url,omitempty"`
	IdPMetadataFile string `json:"idp_metadata_file,omitempty"`
	// EntityID overrides our SP entity id.
	EntityID string `json:"entity_id,omitempty"`
	// SPCertFile and SPKeyFile are our signing pair (PEM). Default: generated
	// once and kept in Caddy's storage.
	SPCertFile string `json:"sp_cert_file,omitempty"`
	SPKeyFile  string `json:"sp_key_file,omitempty"`
	// Binding for the request: "redirect" or "post" (default: the IdP's first).
	Binding string `json:"binding,omitempty"`
	// MetadataValidity is the validUntil of our SP metadata, from now
	// (default 48h; 1h to 8760h). IdPs should refresh from the metadata URL.
	MetadataValidity caddy.Duration `json:"metadata_validity,omitempty"`
	// Attribute names for subject, email, name and groups.
	AttrSubject string `json:"attr_subject,omitempty"`
	AttrEmail   string `json:"attr_email,omitempty"`
	AttrName    string `json:"attr_name,omitempty"`
	AttrGroups  string `json:"attr_groups,omitempty"`
	// TrustEmail treats the IdP's email as verified.
	TrustEmail bool `json:"trust_email,omitempty"`
	// AcceptResponseSignature accepts a signed Response around an unsigned
	// assertion (some IdPs sign only the response by default).
	AcceptResponseSignature bool `json:"accept_response_signature,omitempty"`
	// Allow rules, linking and account creation as for OIDC.
	AllowEmailDomains []string `json:"allow_email_domains,omitempty"`
	AllowGroups       []string `json:"allow_groups,omitempty"`
	AllowSubjects     []string `json:"allow_subjects,omitempty"`
	LinkByEmail       bool     `json:"link_by_email,omitempty"`
	NoAccountCreation bool     `json:"no_account_creation,omitempty"`
}

// providers builds the upstream identity providers of the login config.
func (a *App) providers(ctx caddy.Context, runCtx context.Context) ([]idp.Provider, error) {
	repl := caddy.NewReplacer()
	var out []idp.Provider
	for _, o := range a.Login.OIDC {
		p, err := oidc.New(runCtx, oidc.Config{
			UpstreamConfig: idp.UpstreamConfig{Name: o.Name, DisplayName: o.DisplayName, IconURL: o.IconURL,
				Allow:       idp.AllowRules{EmailDomains: o.AllowEmailDomains, Groups: o.AllowGroups, Subjects: o.AllowSubjects},
				LinkByEmail: o.LinkByEmail, NoAccountCreation: o.NoAccountCreation},
			Issuer:       repl.ReplaceKnown(o.Issuer, ""),
			ClientID:     repl.ReplaceKnown(o.ClientID, ""),
			ClientSecret: repl.ReplaceKnown(o.ClientSecret, ""),
			Scopes:       o.Scopes,
			RedirectURL:  idp.ProviderBaseURL(a.Issuer, a.PathPrefix, o.Name) + "/callback",
			Claims: oidc.ClaimMapping{Subject: o.ClaimSubject, Email: o.ClaimEmail, EmailVerified: o.ClaimEmailVerified,
				Name: o.ClaimName, Groups: o.ClaimGroups},
			UserInfo: o.UserInfo,
			Store:    a.store,
			Logger:   a.slogger,
		})
		if err != nil {
			return nil, fmt.Errorf("mcp_auth: oidc %s: %w", o.Name, err)
		}
		out = append(out, p)
	}
	for _, s := range a.Login.SAML {
		cfg := saml.Config{
			UpstreamConfig: idp.UpstreamConfig{Name: s.Name, DisplayName: s.DisplayName, IconURL: s.IconURL,
				Allow:       idp.AllowRules{EmailDomains: s.AllowEmailDomains, Groups: s.AllowGroups, Subjects: s.AllowSubjects},
				LinkByEmail: s.LinkByEmail, NoAccountCreation: s.NoAccountCreation},
			BaseURL:                 idp.ProviderBaseURL(a.Issuer, a.PathPrefix, s.Name),
			IdPMetadataURL:          repl.ReplaceKnown(s.IdPMetadataURL, ""),
			IdPMetadataFile:         s.IdPMetadataFile,
			EntityID:                s.EntityID,
			KeyStore:                ctx.Storage(),
			Binding:                 s.Binding,
			MetadataValidity:        time.Duration(s.MetadataValidity),
			Attributes:              saml.AttributeMapping{Subject: s.AttrSubject, Email: s.AttrEmail, Name: s.AttrName, Groups: s.AttrGroups},
			TrustEmail:              s.TrustEmail,
			AcceptResponseSignature: s.AcceptResponseSignature,
			Store:                   a.store,
			Logger:                  a.slogger,
		}
		if s.SPCertFile != "" || s.SPKeyFile != "" {
			cert, err := os.ReadFile(s.SPCertFile)
			if err != nil {
				return nil, fmt.Errorf("mcp_auth: saml %s: sp_cert_file: %w", s.Name, err)
			}
			key, err := os.ReadFile(s.SPKeyFile)
			if err != nil {
				return nil, fmt.Errorf("mcp_auth: saml %s: sp_key_file: %w", s.Name, err)
			}
			cfg.SPCertificatePEM, cfg.SPKeyPEM = cert, key
		}
		p, err := saml.New(runCtx, cfg)
		if err != nil {
			return nil, fmt.Errorf("mcp_auth: saml %s: %w", s.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseOIDC(d *caddyfile.Dispenser) (OIDCProvider, error) {
	var o OIDCProvider
	if !d.AllArgs(&o.Name) {
		return o, d.Errf("oidc <name> { … }")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var err error
		switch opt {
		case "issuer":
			err = oneArg(d, &o.Issuer)
		case "client_id":
			err = oneArg(d, &o.ClientID)
		case "client_secret":
			err = oneArg(d, &o.ClientSecret)
		case "display_name":
			err = oneArg(d, &o.DisplayName)
		case "icon_url":
			err = oneArg(d, &o.IconURL)
		case "scopes":
			o.Scopes, err = someArgs(d)
		case "claim_subject":
			err = oneArg(d, &o.ClaimSubject)
		case "claim_email":
			err = oneArg(d, &o.ClaimEmail)
		case "claim_email_verified":
			err = oneArg(d, &o.ClaimEmailVerified)
		case "claim_name":
			err = oneArg(d, &o.ClaimName)
		case "claim_groups":
			err = oneArg(d, &o.ClaimGroups)
		case "userinfo":
			err = noArgs(d, &o.UserInfo)
		case "allow_email_domains":
			o.AllowEmailDomains, err = someArgs(d)
		case "allow_groups":
			o.AllowGroups, err = someArgs(d)
		case "allow_subjects":
			o.AllowSubjects, err = someArgs(d)
		case "link_by_email":
			err = noArgs(d, &o.LinkByEmail)
		case "no_account_creation":
			err = noArgs(d, &o.NoAccountCreation)
		default:
			return o, d.Errf("unknown oidc option %q", opt)
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

func parseSAML(d *caddyfile.Dispenser) (SAMLProvider, error) {
	var s SAMLProvider
	if !d.AllArgs(&s.Name) {
		return s, d.Errf("saml <name> { … }")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var err error
		switch opt {
		case "idp_metadata_url":
			err = oneArg(d, &s.IdPMetadataURL)
		case "idp_metadata_file":
			err = oneArg(d, &s.IdPMetadataFile)
		case "entity_id":
			err = oneArg(d, &s.EntityID)
		case "sp_cert_file":
			err = oneArg(d, &s.SPCertFile)
		case "sp_key_file":
			err = oneArg(d, &s.SPKeyFile)
		case "binding":
			err = oneArg(d, &s.Binding)
			if err == nil && s.Binding != "redirect" && s.Binding != "post" {
				err = d.Errf("binding %q: use redirect or post", s.Binding)
			}
		case "metadata_validity":
			s.MetadataValidity, err = durationArg(d)
		case "display_name":
			err = oneArg(d, &s.DisplayName)
		case "icon_url":
			err = oneArg(d, &s.IconURL)
		case "attr_subject":
			err = oneArg(d, &s.AttrSubject)
		case "attr_email":
			err = oneArg(d, &s.AttrEmail)
		case "attr_name":
			err = oneArg(d, &s.AttrName)
		case "attr_groups":
			err = oneArg(d, &s.AttrGroups)
		case "trust_email":
			err = noArgs(d, &s.TrustEmail)
		case "accept_response_signature":
			err = noArgs(d, &s.AcceptResponseSignature)
		case "allow_email_domains":
			s.AllowEmailDomains, err = someArgs(d)
		case "allow_groups":
			s.AllowGroups, err = someArgs(d)
		case "allow_subjects":
			s.AllowSubjects, err = someArgs(d)
		case "link_by_email":
			err = noArgs(d, &s.LinkByEmail)
		case "no_account_creation":
			err = noArgs(d, &s.NoAccountCreation)
		default:
			return s, d.Errf("unknown saml option %q", opt)
		}
		if err != nil {
			return s, err
		}
	}
	if (s.IdPMetadataURL == "") == (s.IdPMetadataFile == "") {
		return s, d.Errf("saml %s: give exactly one of idp_metadata_url and idp_metadata_file", s.Name)
	}
	return s, nil
}

func oneArg(d *caddyfile.Dispenser, v *string) error {
	if !d.AllArgs(v) {
		return d.ArgErr()
	}
	return nil
}

func someArgs(d *caddyfile.Dispenser) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	return args, nil
}

func noArgs(d *caddyfile.Dispenser, b *bool) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	*b = true
	return nil
}
