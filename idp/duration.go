package idp

import (
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/duration"
)

// Duration is a time.Duration in a kind's JSON options, with the JSON form
// of Caddy's caddy.Duration (the config's other durations): see
// internal/duration.
type Duration = duration.Duration

// ParseDuration is time.ParseDuration plus the unit "d" (24h), as Caddy's
// caddy.ParseDuration.
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }
