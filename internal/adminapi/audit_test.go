package adminapi

import (
	"testing"
	"time"
)

// since takes an RFC 3339 time or a duration back from now, with Caddy's
// "d" unit of 24 hours.
func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"2026-03-01T00:00:00Z", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), false},
		{"24h", now.Add(-24 * time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"1d", now.Add(-24 * time.Hour), false},
		{"1.5d", now.Add(-36 * time.Hour), false},
		{"1d2h", now.Add(-26 * time.Hour), false},
		{"0s", time.Time{}, true},
		{"-1h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"d", time.Time{}, true},
		{"", time.Time{}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseSince(c.in, now)
			if (err != nil) != c.err || !got.Equal(c.want) {
				t.Fatalf("parseSince(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
		})
	}
}
