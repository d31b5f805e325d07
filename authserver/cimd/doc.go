// Package cimd implements OAuth Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document, "CIMD") for caddy-mcpauth:
// requirement 11 of the project's requirements. A client whose client_id is
// an https URL (Claude, ChatGPT, VS Code, the MCP SDKs) is described by the
// JSON document served at that URL; the authorization server fetches it,
// validates it and treats the client as a public client.
//
// The package is self-contained: it imports neither Caddy nor the
// authorization server, and returns storage.Client records.
//
//   - ValidClientIDURL (clientid.go) checks a Client Identifier URL (§3):
//     https, a path other than "/", no userinfo, no fragment, no dot
//     segments (also percent-encoded), a lower-case DNS host that is not
//     an IP address in any spelling, at most MaxClientIDLength bytes.
//     Choice: a query component is accepted, as the draft says only
//     SHOULD NOT; the id is compared as a plain string, so it cannot alias
//     another client.
//   - Fetcher (fetch.go, ssrf.go) retrieves a document safely against
//     server-side request forgery (§8.6): https only, no proxy, no redirect,
//     every dialled address checked against the RFC 6890 special-use ranges
//     after DNS resolution and again on the socket (DNS rebinding), strict
//     timeouts, a 5 KiB read cap by default (§8.7), only 200 +
//     application/json + identity encoding, optional extra CA roots, and a
//     shorter whole-fetch timeout for hosts outside the trusted hosts. A
//     development-only loopback exception exists; it is off by default and
//     logged loudly.
//   - Budgets (budget.go): a fetch is charged to the requester (client IP,
//     IPv6 by /64), the registrable domain (Public Suffix List) and the
//     host, as token buckets with concurrency caps, under a global slot
//     limit; a refetch of a client id that resolved before (trusted host)
//     has its own per-host bucket and reserved slots. Tables are bounded
//     LRUs that evict the least recently used idle entry, never refusing
//     because they are full. A refusal is a temporary failure (ErrTemporary,
//     with a Retry-After), like timeouts, 5xx and network errors.
//   - ValidateDocument (document.go) checks a document (§4, §4.1):
//     client_id equal to the URL, redirect_uris and client_name present, no
//     client secret, no shared-secret authentication; "none", or
//     "private_key_jwt" with a jwks_uri or jwks (the declared
//     token_endpoint_auth_method decides; a list without it that includes
//     "none" is "none").
//   - FetchJWKS (jwks.go) fetches a private_key_jwt client's jwks_uri under
//     the same rules and budgets, capped at 5 KiB.
//   - Resolver (cache.go) combines them with the trusted-hosts policy and a
//     cache that follows HTTP cache headers within bounds (§5.2), shares
//     one fetch among concurrent callers, never caches a failure as a
//     document but remembers it briefly (NegativeTTL) so repeated junk
//     costs no fetch, and serves a known-good document stale (MaxStale)
//     when its refetch fails transiently.
//
// A change of redirect_uris or client_name changes storage.Client.Fingerprint
// (oauth.Fingerprint), which the consent logic binds remembered consent to.
package cimd
