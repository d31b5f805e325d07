package caddymodule

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/oidc"
	"github.com/mcpauth/caddy-mcpauth/idp/saml"
)

// The upstream identity providers of the login config, of any kind in the
// idp's registry (idp.RegisterKind). Each kind's package owns its options
// (their JSON and their subdirectives) and builds its providers; this file
// only decodes, parses and hands over.

// providers builds the upstream identity providers of the login config,
// each through its registered kind.
func (a *App) providers(ctx caddy.Context, runCtx context.Context) ([]idp.Provider, error) {
	repl := caddy.NewReplacer()
	env := idp.KindEnv{Store: a.store, Logger: a.slogger, KeyStore: caddyStorage{ctx},
		Replace: func(s string) string { return repl.ReplaceKnown(s, "") }}
	var out []idp.Provider
	for _, u := range a.Login.Providers() {
		k, err := idp.KindFor(u.Kind)
		if err != nil {
			return nil, fmt.Errorf("mcp_auth: %w", err)
		}
		if u.Options == nil {
			return nil, fmt.Errorf("mcp_auth: %s provider without options", u.Kind)
		}
		name := u.Options.ProviderName()
		env.BaseURL = idp.ProviderBaseURL(a.Issuer, a.PathPrefix, name)
		p, err := k.Build(runCtx, u.Options, env)
		if err != nil {
			return nil, fmt.Errorf("mcp_auth: %s %s: %w", u.Kind, name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// caddyStorage is Caddy's storage as an idp.KeyStore, looked up when a
// kind first uses it (a context without a config has none).
type caddyStorage struct{ ctx caddy.Context }

func (s caddyStorage) Load(ctx context.Context, key string) ([]byte, error) {
	return s.ctx.Storage().Load(ctx, key)
}

func (s caddyStorage) Store(ctx context.Context, key string, value []byte) error {
	return s.ctx.Storage().Store(ctx, key, value)
}

// parseOIDC parses `oidc <name> { … }`.
func parseOIDC(d *caddyfile.Dispenser) (OIDCProvider, error) {
	var o OIDCProvider
	err := parseKindBlock(d, oidc.KindName, &o)
	return o, err
}

// parseSAML parses `saml <name> { … }`.
func parseSAML(d *caddyfile.Dispenser) (SAMLProvider, error) {
	var s SAMLProvider
	err := parseKindBlock(d, saml.KindName, &s)
	return s, err
}

// parseUpstream parses `upstream <kind> <name> { … }` for any registered kind.
func parseUpstream(d *caddyfile.Dispenser) (UpstreamProvider, error) {
	if !d.NextArg() {
		return UpstreamProvider{}, d.Err("upstream <kind> <name> { … }")
	}
	k, err := idp.KindFor(d.Val())
	if err != nil {
		return UpstreamProvider{}, d.WrapErr(err)
	}
	opts := k.NewOptions()
	if err := parseKindBlock(d, k.Name(), opts); err != nil {
		return UpstreamProvider{}, err
	}
	return UpstreamProvider{Kind: k.Name(), Options: opts}, nil
}

// parseKindBlock reads the provider's name (the one argument left on the
// line) and feeds each subdirective line of the block to the kind's
// SetOption; errors carry the Caddyfile position.
func parseKindBlock(d *caddyfile.Dispenser, kind string, opts idp.KindOptions) error {
	var name string
	if !d.AllArgs(&name) {
		return d.Errf("%s <name> { … }", kind)
	}
	opts.SetProviderName(name)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := opts.SetOption(d.Val(), d.RemainingArgs()); err != nil {
			if errors.Is(err, idp.ErrArgCount) {
				return d.ArgErr()
			}
			return d.WrapErr(err)
		}
	}
	if err := opts.Validate(); err != nil {
		return d.WrapErr(err)
	}
	return nil
}
