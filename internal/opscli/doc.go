// Package opscli is the operator CLI, `caddy-mcpauth mcpauth ...`: the
// cobra commands, their flags and help, the admin API client, the tables
// it prints and the password prompt, plus the offline commands that open a
// store themselves (migrate-store, backup --db) and doctor.
//
// A running server holds its bbolt file locked, so the online commands
// only speak HTTP to the server's admin API (under Config.APIPrefix);
// migrate-store and backup --db open a store directly and are for a
// stopped server.
//
// It never imports Caddy (internal/archtest): caddymodule registers the
// command with Caddy and hands in, through Config, what only Caddy knows:
// the default admin address, how to parse an admin address, and Caddy's
// version. It may import storage and its backends, internal/doctor,
// internal/version and authserver/cimd (doctor's metadata fetcher).
package opscli
