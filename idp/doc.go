// Package idp is the browser side of the authorization server: the hosted
// login. It implements authserver.Browser (who is signed in, the login and
// consent pages, CSRF, the error page) and serves its own pages: login,
// signup, logout and the callbacks of upstream identity providers.
//
// Requirements 13, 15 and 16 of the project's requirements are implemented
// here:
//
//   - Sessions (session.go): a 32-byte random id in the cookie
//     __Host-mcpauth_session (Secure, HttpOnly, SameSite=Lax, Path=/), stored
//     under its SHA-256, renewed at every login, deleted at logout, with an
//     idle and an absolute timeout.
//   - CSRF (csrf.go): forms of a signed-in browser carry an HMAC of a purpose
//     under the session's own CSRF secret (synchronizer token); forms shown
//     before a session exists (login, signup) use a signed double-submit
//     cookie __Host-mcpauth_csrf. Every POST is checked, and a present Origin
//     header must be the issuer's origin.
//   - Security headers (headers.go) on every page: a CSP with a per-response
//     style nonce, frame-ancestors 'none', X-Frame-Options DENY,
//     Referrer-Policy no-referrer, nosniff, Cache-Control no-store.
//   - The post-login return path (returnto.go) is a same-origin relative path
//     only.
//   - Failed logins are throttled per (account, client prefix) and per client
//     prefix, with an account-wide back-off (throttle.go, ThrottleConfig):
//     an attacker locks only itself out of an account, never its owner for
//     long. The client IP is the one Caddy resolved, never a raw
//     X-Forwarded-For; IPv6 counts by /64.
//   - Unauthenticated refusals (CSRF failures, throttled attempts, refused
//     upstream callbacks) reach the audit log through an aggregator
//     (Config.Refusals): one record per reason, source prefix and minute.
//   - Passwords are argon2id (package idp/password); unknown accounts cost the
//     same work as known ones and get the same message.
//
// Upstream identity (OpenID Connect, SAML) plugs in through Provider
// (provider.go). A provider starts the upstream flow in Begin and, when its
// callback has verified the upstream answer, hands the identity to
// Completer.CompleteUpstream; the idp links it to a local account by
// (provider, subject), by verified email only when the provider's policy
// allows it, applies the provider's allow rules and starts the session.
//
// Kinds of upstream provider register themselves (kind.go): a Kind names
// itself ("oidc", "saml"), makes a fresh KindOptions (a JSON-tagged struct
// the kind's package owns, also filled line by line through SetOption, so
// the Caddy adapter parses any kind's Caddyfile block without knowing its
// options) and builds a Provider from the options and a KindEnv (the
// provider's base URL, the store, the logger, a key store, the placeholder
// expansion). A third kind is one new package: an Upstream record
// (upstream.go), a Flow, usually a BrowserBinding (binding.go), and an
// init that calls RegisterKind. A name registered twice panics.
//
// # Pages and templates
//
// Pages are html/template files embedded from templates/; an operator can
// replace any of them with a file of the same name in Config.TemplatesDir:
// layout.html (defines "layout": the document, one <style nonce="{{.Nonce}}">
// block, calls "title" and "content"), login.html, signup.html,
// consent.html, error.html, logout.html and not_allowed.html (each defines
// "title" and "content"). New parses and renders every page once with sample
// data, so a broken override fails at startup, not in front of a user.
// Every page gets .Lang, .Nonce, .Brand (ProductName, Initial, LogoURL,
// SupportURL, SupportEmail, Accent, OnAccent, LinkLight, LinkDark), .CSRF
// (to put in a hidden field named csrf_token) and one of .Login, .Signup,
// .Consent, .Err, .Logout, .NotAllowed (see templates.go for their fields).
// The CSP admits no script and no inline style attribute: keep all CSS in the
// nonce'd block.
//
// # Routes
//
// With PathPrefix "" the hosted login serves GET/POST /login, GET/POST
// /signup, GET/POST /logout, POST /login/{provider} (start an upstream
// login) and /login/{provider}/... (the provider's own callbacks). The
// authorization server's /authorize renders the login and consent pages
// through the Browser methods.
package idp
