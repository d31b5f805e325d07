// Package metrics holds the Prometheus counters of the mcp_auth app
// (metrics.go): tokens issued and refused, refusals by endpoint and reason,
// guard decisions and tool calls, CIMD fetches, logins and dropped audit
// events. Every label takes its value from a closed set, never a client id,
// host or user.
//
// The collectors are created once per process and registered into each
// registry Register is given (Caddy makes a fresh one per config load), so
// counters keep counting across reloads.
//
// It may import the Prometheus client, storage, internal/audit and the
// closed label sets of authserver/cimd, authserver/oauth and resourceguard;
// never Caddy (caddymodule passes ctx.GetMetricsRegistry()).
package metrics
