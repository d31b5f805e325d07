// Command todo is the sample MCP server that caddy-mcpauth protects in the
// demo and in the end-to-end tests.
//
// It is a plain MCP server built with github.com/modelcontextprotocol/go-sdk,
// speaking the streamable HTTP transport on /mcp, and it knows nothing of
// OAuth: authentication and authorization happen in front of it, in the
// caddy-mcpauth resource guard. What it gets from the guard are identity
// headers (X-Mcp-Subject and friends) that the guard sets after stripping any
// client-sent copies.
//
// It speaks both kinds of MCP revision on /mcp: 2026-07-28 and later
// statelessly (no initialize, no Mcp-Session-Id; requests are routed by their
// MCP-Protocol-Version header), and the older revisions (2024-11-05 to
// 2025-11-25) with the stateful sessions they need. The go-sdk serves
// 2026-07-28 only from a stateless handler, so there are two handlers over
// one server and one store.
//
// Tools:
//
//   - add_todo, list_todos, complete_todo, delete_todo: a small todo list,
//     kept in memory, one list per subject (the X-Mcp-Subject header; requests
//     without it share the "anonymous" list).
//   - slow_count: counts to n, sending a progress notification per step, so
//     tests can check that streamed responses pass through the proxy unbuffered.
//   - whoami: reports the identity headers the request carried and whether it
//     carried an Authorization header, so tests can check the hand-off.
//
// The server must never receive the client's access token (no token
// passthrough). Every request that carries an Authorization header is logged
// (the header's presence, never its value) and counted; /healthz reports the
// count, and so does whoami.
//
// Usage:
//
//	todo -addr 127.0.0.1:9000
//
// Flags:
//
//	-addr             listen address (default 127.0.0.1:9000)
//	-subject-header   header carrying the authenticated subject (default X-Mcp-Subject)
//	-identity-prefix  prefix of the identity headers reported by whoami (default X-Mcp-)
//	-allow-any-host   turn off the go-sdk's DNS-rebinding protection (only when
//	                  the server is behind a proxy that forwards a public Host
//	                  to a loopback listener)
package main
