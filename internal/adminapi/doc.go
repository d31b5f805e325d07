// Package adminapi serves the operator routes of the mcp_auth app, under
// /mcp_auth/ on Caddy's admin endpoint (caddymodule's AdminAPI module
// mounts it):
//
//	GET  clients                      list clients (never a secret hash)
//	GET  clients/{id}                 one client, with its active grant count
//	POST clients/{id}/disable         refuse the client at /authorize, /token and the guard
//	POST clients/{id}/enable
//	POST clients/{id}/revoke          end every grant and remembered consent of the client now
//	GET  users                        list accounts (never a password hash)
//	POST users                        {"email","name","password"}: create a password account
//	POST users/{id}/disable           disable, end sessions and grants
//	POST users/{id}/enable
//	POST users/{id}/password          {"password"}: set it, end sessions and grants
//	POST users/{id}/revoke-sessions   end browser sessions and grants
//	GET  audit?limit=&type=&client_id=&sub=&since=
//	GET  keys                         signing keys (kid, alg, dates; never private parts)
//	POST keys/rotate                  make a new signing key active
//	GET  backup                       a consistent copy of the bbolt store
//
// Ids are path segments: escape them (CIMD client ids are URLs). Disabling
// a CIMD client, which has no stored record, stores a disabled one: the
// guard then refuses its tokens (the token endpoint resolves CIMD clients
// from their documents). Every operator action writes an audit event. The
// admin endpoint is as trusted as Caddy's own /config API: keep it on
// localhost or a unix socket.
//
// Files: handler.go routes and the shared decoding, writing, error and audit
// helpers; clients.go, users.go, audit.go, keys.go and backup.go one
// collection each. Handler.Serve returns an *Error carrying the HTTP status
// and message; caddymodule turns it into caddy.APIError, which Caddy sends
// as {"error": message}.
//
// The decisions behind each action (what disabling revokes, what is
// audited in the same transaction) are authserver's and idp's; this package
// maps HTTP to their operator calls. It imports storage, authserver,
// idp and internal/audit; never Caddy.
package adminapi
