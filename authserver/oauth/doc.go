// Package oauth holds the OAuth rules that every lane of the authorization
// server shares (owned clients, Dynamic Client Registration, Client ID
// Metadata Documents), each written once:
//
//   - the OAuth error codes and the one error type with its constructors
//     (RFC 6749 §4.1.2.1 and §5.2, RFC 7009 §2.2.1, RFC 7591 §3.2.2,
//     RFC 8707 §2), and the closed set of refusal reasons it carries;
//   - grant, response-type and token-endpoint auth-method names;
//   - the redirect-URI policy: validation at registration, matching at
//     /authorize, the loopback rule (RFC 8252 §7.3);
//   - the consent fingerprint: which client metadata, when it changes,
//     asks the user for fresh consent;
//   - which client ids are CIMD client ids.
//
// It is a leaf: it imports only the standard library and storage (checked by
// internal/archtest), so dcr, cimd and authserver can all depend on it.
package oauth
