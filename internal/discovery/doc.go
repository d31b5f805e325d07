// Package discovery holds the rules of which OAuth discovery paths the
// product answers on its routes (paths.go) and the registry of the
// protected resource metadata paths that the guards of one config serve
// (prmregistry.go).
//
// Requirement 28: every /.well-known/ path that mcp_auth_server or
// mcp_protect owns answers a JSON document or a JSON 404
// {"error":"not_found"}, never Caddy's empty 200 of an unanswered request.
//
//   - mcp_auth_server owns /.well-known/oauth-authorization-server[/…] and
//     /.well-known/openid-configuration[/…] on its site (authserver.Server.
//     OwnsDiscovery). It passes protected resource metadata paths on to the
//     guards of the site when one of them serves that path on this host, and
//     answers a JSON 404 when none does.
//   - mcp_protect owns the three families at the root of its host (its
//     route matches them besides its own matcher) and every /.well-known/
//     path under its matcher. A sibling guard's PRM path on the same host
//     is passed on; nothing else reaches the upstream.
//   - A discovery name appended to another path on the authorization
//     server's site (/x/.well-known/openid-configuration) is not the
//     product's: it goes to the next handlers, and is a JSON 404 only when
//     none of them answers.
//
// It lives apart from authserver and resourceguard because it spans both:
// the authorization server's handler consults the guards' claims, and
// resourceguard may not depend on authserver. It imports only the standard
// library and those two packages' well-known names; never Caddy (the
// handlers that apply these rules, and the JSON 404 after an unanswered
// chain, are caddymodule's).
package discovery
