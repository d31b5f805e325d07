package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/mcpauth/caddy-mcpauth/authserver"
)

// Caddyfile parsing of mcp_auth's enterprise_idp and workload_issuer options
// (their JSON is config.EnterpriseIdP and config.WorkloadIssuer).

// parseEnterpriseIdP parses `enterprise_idp <name> { … }`.
func parseEnterpriseIdP(d *caddyfile.Dispenser) (EnterpriseIdPConfig, error) {
	var c EnterpriseIdPConfig
	if !d.NextArg() {
		return c, d.Errf("enterprise_idp needs a name")
	}
	c.Name = d.Val()
	if d.NextArg() {
		return c, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "issuer":
			if !d.AllArgs(&c.Issuer) {
				return c, d.ArgErr()
			}
		case "jwks_uri":
			if !d.AllArgs(&c.JWKSURI) {
				return c, d.ArgErr()
			}
		case "clients":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return c, d.ArgErr()
			}
			c.Clients = append(c.Clients, args...)
		case "scope_map":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return c, d.Errf("scope_map needs an IdP scope and our scopes")
			}
			if c.ScopeMap == nil {
				c.ScopeMap = map[string][]string{}
			}
			if _, dup := c.ScopeMap[args[0]]; dup {
				return c, d.Errf("scope_map %s is configured twice", args[0])
			}
			c.ScopeMap[args[0]] = args[1:]
		case "subject":
			if !d.AllArgs(&c.Subject) {
				return c, d.ArgErr()
			}
			if c.Subject != authserver.SubjectBySub && c.Subject != authserver.SubjectByVerifiedEmail {
				return c, d.Errf("subject must be %s or %s", authserver.SubjectBySub, authserver.SubjectByVerifiedEmail)
			}
		case "provision":
			v, err := onOffArg(d)
			if err != nil {
				return c, err
			}
			c.Provision = v
		case "max_lifetime":
			v, err := configDurationArg(d)
			if err != nil {
				return c, err
			}
			c.MaxLifetime = v
		default:
			return c, d.Errf("unknown enterprise_idp option %q", opt)
		}
	}
	return c, nil
}

// parseWorkloadIssuer parses `workload_issuer <name> { … }`.
func parseWorkloadIssuer(d *caddyfile.Dispenser) (WorkloadIssuerConfig, error) {
	var c WorkloadIssuerConfig
	if !d.NextArg() {
		return c, d.Errf("workload_issuer needs a name")
	}
	c.Name = d.Val()
	if d.NextArg() {
		return c, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "issuer":
			if !d.AllArgs(&c.Issuer) {
				return c, d.ArgErr()
			}
		case "jwks_uri":
			if !d.AllArgs(&c.JWKSURI) {
				return c, d.ArgErr()
			}
		case "audience":
			if !d.AllArgs(&c.Audience) {
				return c, d.ArgErr()
			}
		case "subject_claim":
			if !d.AllArgs(&c.SubjectClaim) {
				return c, d.ArgErr()
			}
		case "client":
			var sub, id string
			if !d.AllArgs(&sub, &id) {
				return c, d.Errf("client needs a workload subject and a client id")
			}
			if c.Clients == nil {
				c.Clients = map[string]string{}
			}
			if _, dup := c.Clients[sub]; dup {
				return c, d.Errf("workload subject %s is mapped twice", sub)
			}
			c.Clients[sub] = id
		case "max_lifetime":
			v, err := configDurationArg(d)
			if err != nil {
				return c, err
			}
			c.MaxLifetime = v
		case "single_use":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			c.SingleUse = true
		default:
			return c, d.Errf("unknown workload_issuer option %q", opt)
		}
	}
	return c, nil
}

// onOffArg reads one on/off argument.
func onOffArg(d *caddyfile.Dispenser) (bool, error) {
	var v string
	if !d.AllArgs(&v) {
		return false, d.ArgErr()
	}
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, d.Errf("want on or off, not %q", v)
}
