package config

import (
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/duration"
)

// Duration is a time.Duration with caddy.Duration's JSON semantics: see
// internal/duration (one definition for the config, the provider kinds and
// the admin API).
type Duration = duration.Duration

// ParseDuration is time.ParseDuration plus the unit "d" (24h), as
// caddy.ParseDuration.
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }
