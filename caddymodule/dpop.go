package caddymodule

import (
	"slices"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/mcpauth/caddy-mcpauth/internal/dpop"
)

// parseDPoP parses mcp_auth's DPoP options (config.DPoP):
//
//	dpop {
//		algorithms <alg...>   # default ES256 ES384 EdDSA PS256 RS256
//		nonce                 # require a server nonce (DPoP-Nonce) at /token
//	}
func parseDPoP(d *caddyfile.Dispenser) (*DPoPConfig, error) {
	c := &DPoPConfig{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "algorithms":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			for _, a := range args {
				if !slices.Contains(dpop.Algs, a) {
					return nil, d.Errf("dpop: algorithm %q is not accepted (one of %v)", a, dpop.Algs)
				}
			}
			c.Algorithms = append(c.Algorithms, args...)
		case "nonce":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			c.Nonce = true
		default:
			return nil, d.Errf("unknown dpop option %q", opt)
		}
	}
	return c, nil
}
