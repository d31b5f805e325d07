// Package doctor replays, against a running MCP site, the discovery and
// sign-in preflight that the major MCP clients perform (Claude, Claude Code,
// ChatGPT, VS Code, Cursor, the MCP Inspector) and says, per client and
// check, what passes, what fails and how to fix it.
//
// It is a black-box client: it speaks HTTP to the site as the clients do
// (the unauthenticated 401 and its challenge, every well-known path each
// client asks for, CORS preflights, /authorize with each client's CIMD
// client id, /register with each client's registration shape) and never
// needs credentials. It changes no state on the site except the DCR
// registrations it makes (which the site's stale-client cleanup removes;
// --no-register skips them).
//
// The client profiles follow what the clients are known to do (the README's
// "Connect your client" table); each is data, so a new client is one entry
// in profiles.go.
package doctor
