package config

import (
	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/oidc"
	"github.com/mcpauth/caddy-mcpauth/idp/saml"
)

// The upstream identity providers of the hosted login, of any kind in the
// idp's registry (idp.RegisterKind). Each kind's package owns its options
// (their JSON and their subdirectives) and builds its providers.

// OIDCProvider is an upstream OpenID Connect provider (login.oidc): see
// oidc.Options.
type OIDCProvider = oidc.Options

// SAMLProvider is an upstream SAML 2.0 identity provider (login.saml): see
// saml.Options.
type SAMLProvider = saml.Options

// UpstreamProvider is an upstream identity provider of any registered kind
// (login.upstreams): {"kind": "<kind>", "name": ..., <the kind's options>};
// see idp.UpstreamOptions.
type UpstreamProvider = idp.UpstreamOptions

// ConfiguredUpstream is one provider of the login config with its kind.
type ConfiguredUpstream struct {
	Kind    string
	Options idp.KindOptions
}

// Providers lists the login config's providers in button order: the OIDC
// ones, the SAML ones, then the generic list.
func (l *Login) Providers() []ConfiguredUpstream {
	var out []ConfiguredUpstream
	for i := range l.OIDC {
		out = append(out, ConfiguredUpstream{oidc.KindName, &l.OIDC[i]})
	}
	for i := range l.SAML {
		out = append(out, ConfiguredUpstream{saml.KindName, &l.SAML[i]})
	}
	for _, u := range l.Upstreams {
		out = append(out, ConfiguredUpstream{u.Kind, u.Options})
	}
	return out
}

// ProviderNames are the names of the login config's providers, in order.
func (l *Login) ProviderNames() []string {
	var out []string
	for _, u := range l.Providers() {
		n := ""
		if u.Options != nil {
			n = u.Options.ProviderName()
		}
		out = append(out, n)
	}
	return out
}
