package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/mcpauth/caddy-mcpauth/config"
)

// The JSON config types live in package config; the Caddyfile parsing of
// this package names them by their old names.
type (
	StorageConfig        = config.Storage
	ClientConfig         = config.Client
	LoginConfig          = config.Login
	UserConfig           = config.User
	SMTPConfig           = config.SMTP
	CIMDConfig           = config.CIMD
	CIMDClientPolicy     = config.CIMDClientPolicy
	CIMDRate             = config.CIMDRate
	DCRConfig            = config.DCR
	ResourceIndicators   = config.ResourceIndicators
	EnterpriseIdPConfig  = config.EnterpriseIdP
	WorkloadIssuerConfig = config.WorkloadIssuer
	DPoPConfig           = config.DPoP
	IdentityHeaders      = config.IdentityHeaders
	ToolLimit            = config.ToolLimit
)

// configDurationArg is durationArg for the fields of package config.
// upstream.go's SAMLProvider still holds a caddy.Duration from durationArg;
// once it uses config.SAMLProvider, durationArg can return config.Duration
// and this goes.
func configDurationArg(d *caddyfile.Dispenser) (config.Duration, error) {
	v, err := durationArg(d)
	return config.Duration(v), err
}

// The Caddyfile's upstream providers (upstream.go's types) in the JSON
// model's (config's twins of them, with the same JSON).
func configOIDC(o OIDCProvider) config.OIDCProvider { return config.OIDCProvider(o) }

func configSAML(s SAMLProvider) config.SAMLProvider {
	return config.SAMLProvider{
		Name: s.Name, DisplayName: s.DisplayName, IconURL: s.IconURL,
		IdPMetadataURL: s.IdPMetadataURL, IdPMetadataFile: s.IdPMetadataFile, EntityID: s.EntityID,
		SPCertFile: s.SPCertFile, SPKeyFile: s.SPKeyFile, Binding: s.Binding,
		MetadataValidity: config.Duration(s.MetadataValidity),
		AttrSubject:      s.AttrSubject, AttrEmail: s.AttrEmail, AttrName: s.AttrName, AttrGroups: s.AttrGroups,
		TrustEmail: s.TrustEmail, AcceptResponseSignature: s.AcceptResponseSignature,
		AllowEmailDomains: s.AllowEmailDomains, AllowGroups: s.AllowGroups, AllowSubjects: s.AllowSubjects,
		LinkByEmail: s.LinkByEmail, NoAccountCreation: s.NoAccountCreation,
	}
}
