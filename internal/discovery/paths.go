package discovery

import (
	"strings"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// roots are the well-known names of OAuth discovery.
var roots = []string{
	authserver.WellKnownAuthorizationServer,
	"/.well-known/openid-configuration",
	resourceguard.WellKnownPRM,
}

// Root reports whether path is one of the discovery names, alone or
// followed by a path.
func Root(path string) bool {
	for _, wk := range roots {
		if under(path, wk) {
			return true
		}
	}
	return false
}

// PRMFamily reports whether path is /.well-known/oauth-protected-resource[/…].
func PRMFamily(path string) bool {
	return under(path, resourceguard.WellKnownPRM)
}

// Appended reports whether path ends in a discovery name appended to
// another path (/x/.well-known/openid-configuration).
func Appended(path string) bool {
	p := strings.ToLower(path)
	for _, wk := range roots {
		if i := strings.Index(p, wk); i > 0 && (len(p) == i+len(wk) || p[i+len(wk)] == '/') {
			return true
		}
	}
	return false
}

// under reports whether path is prefix alone or followed by a path. It
// concatenates nothing: the guard asks for every request.
func under(path, prefix string) bool {
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}
