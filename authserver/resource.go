package authserver

import (
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/resourceuri"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Resource indicators (RFC 8707; requirement 7).

// NormalizeResource returns the canonical form of a resource indicator
// (see resourceuri.Normalize), or an invalid_target *Error.
func NormalizeResource(raw string) (string, error) {
	n, err := resourceuri.Normalize(raw)
	if err != nil {
		return "", oauth.ErrInvalidTarget(err.Error())
	}
	return n, nil
}

// ResourcePolicy binds tokens to resources (RFC 8707). Its four knobs
// follow requirement 7.
type ResourcePolicy struct {
	// Enabled turns resource indicators on (the default in config). When
	// false the resource parameter is ignored and every token gets the
	// fallback audience.
	Enabled bool
	// ClientAudienceFallback lets a request without resource use the
	// client's DefaultAudience.
	ClientAudienceFallback bool
	// EnforceOnTokenExchange makes a resource sent to the token endpoint
	// with the code match the one bound at /authorize.
	EnforceOnTokenExchange bool
	// KeepBindingOnRefresh lets a refresh request without resource keep the
	// grant's resource (clients such as the Go SDK omit it). When false, a
	// refresh must name the bound resource.
	KeepBindingOnRefresh bool
	// Known are the resources this server issues tokens for (guarded sites
	// and configured audiences), normalized.
	Known []string
	// Default is the resource used when a request names none and the client
	// has no audience of its own. When empty and exactly one resource is
	// known, that one is the default.
	Default string
}

// Resolve picks the resource an authorization request is bound to. Several
// resource values are refused (invalid_target); a present value must
// normalize to a known resource (one of Known, Default or the client's
// DefaultAudience). With none: the client's DefaultAudience (when
// ClientAudienceFallback), else Default, else the only Known resource, else
// invalid_target. Only owned clients' DefaultAudience counts.
func (p ResourcePolicy) Resolve(requested []string, client storage.Client) (string, *oauth.Error) {
	if p.Enabled {
		switch len(requested) {
		case 0:
		case 1:
			res, err := NormalizeResource(requested[0])
			if err != nil {
				return "", oauth.AsError(err)
			}
			if !p.knows(res, client) {
				return "", oauth.ErrInvalidTarget("resource is not served by this authorization server").Because(oauth.ReasonResourceUnknown)
			}
			return res, nil
		default:
			return "", oauth.ErrInvalidTarget("only one resource parameter is allowed")
		}
	}
	return p.fallback(client)
}

// clientAudience is the client's configured audience. Only owned clients
// (configured by the operator) have one: a third-party client (CIMD, DCR)
// can never name the audience of its tokens.
func clientAudience(client storage.Client) string {
	if client.Kind != storage.ClientOwned {
		return ""
	}
	return client.DefaultAudience
}

func (p ResourcePolicy) fallback(client storage.Client) (string, *oauth.Error) {
	if aud := clientAudience(client); p.ClientAudienceFallback && aud != "" {
		if res, err := NormalizeResource(aud); err == nil {
			return res, nil
		}
		return "", oauth.ErrInvalidTarget("the client's default audience is not a valid resource")
	}
	if p.Default != "" {
		if res, err := NormalizeResource(p.Default); err == nil {
			return res, nil
		}
		return "", oauth.ErrInvalidTarget("the default resource is not valid")
	}
	if len(p.Known) == 1 {
		if res, err := NormalizeResource(p.Known[0]); err == nil {
			return res, nil
		}
	}
	return "", oauth.ErrInvalidTarget("resource parameter required").Because(oauth.ReasonResourceUnknown)
}

// knows reports whether the normalized res is a resource of this server.
func (p ResourcePolicy) knows(res string, client storage.Client) bool {
	candidates := make([]string, 0, len(p.Known)+2)
	candidates = append(candidates, p.Known...)
	if p.Default != "" {
		candidates = append(candidates, p.Default)
	}
	if aud := clientAudience(client); aud != "" {
		candidates = append(candidates, aud)
	}
	for _, c := range candidates {
		if c == res {
			return true
		}
		if n, err := NormalizeResource(c); err == nil && n == res {
			return true
		}
	}
	return false
}

// CheckExchange checks the resource sent with an authorization code against
// the one bound at /authorize and returns the audience of the token: the
// bound resource. With EnforceOnTokenExchange a present resource must
// normalize to the bound one (several values are refused); otherwise the
// parameter is ignored.
func (p ResourcePolicy) CheckExchange(requested []string, bound string) (string, *oauth.Error) {
	if !p.Enabled || !p.EnforceOnTokenExchange || len(requested) == 0 {
		return bound, nil
	}
	return matchBound(requested, bound)
}

// CheckRefresh checks the resource of a refresh request for a grant bound to
// bound and issued to client. A requested resource that is malformed, or
// unknown and not the bound one, is invalid_target (the request asks for
// something this server does not serve). A grant whose bound resource is no
// longer served (removed from the configuration) is invalid_grant: the
// client must start a new authorization, which an OAuth client does on
// invalid_grant (requirement 30). Otherwise: absent, the bound resource when
// KeepBindingOnRefresh, else invalid_target; present, it must normalize to
// the bound resource (a refreshed token never changes audience).
func (p ResourcePolicy) CheckRefresh(requested []string, bound string, client storage.Client) (string, *oauth.Error) {
	if !p.Enabled {
		return bound, nil
	}
	if len(requested) > 1 {
		return "", oauth.ErrInvalidTarget("only one resource parameter is allowed")
	}
	nb, nbErr := NormalizeResource(bound)
	if len(requested) == 1 {
		res, err := NormalizeResource(requested[0])
		if err != nil {
			return "", oauth.AsError(err)
		}
		if (nbErr != nil || res != nb) && !p.knows(res, client) {
			return "", oauth.ErrInvalidTarget("resource is not served by this authorization server").Because(oauth.ReasonResourceUnknown)
		}
	}
	if nbErr != nil || !p.knows(nb, client) {
		return "", oauth.ErrInvalidGrant("the resource of this grant is no longer served; authorize again").Because(oauth.ReasonResourceGone)
	}
	if len(requested) == 0 {
		if p.KeepBindingOnRefresh {
			return bound, nil
		}
		return "", oauth.ErrInvalidTarget("resource parameter required on refresh").Because(oauth.ReasonResourceUnknown)
	}
	return matchBound(requested, bound)
}

func matchBound(requested []string, bound string) (string, *oauth.Error) {
	if len(requested) > 1 {
		return "", oauth.ErrInvalidTarget("only one resource parameter is allowed")
	}
	res, err := NormalizeResource(requested[0])
	if err != nil {
		return "", oauth.AsError(err)
	}
	nb, err := NormalizeResource(bound)
	if err != nil || res != nb {
		return "", oauth.ErrInvalidTarget("resource does not match the authorization grant").Because(oauth.ReasonResourceMismatch)
	}
	return bound, nil
}
