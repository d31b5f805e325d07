package config

import (
	"encoding/json"
	"testing"
	"time"
)

// Duration reads what caddy.Duration reads (caddymodule's test compares the
// two on the same inputs) and writes nanoseconds.
func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`90000000000`: 90 * time.Second,
		`"90s"`:       90 * time.Second,
		`"1d"`:        24 * time.Hour,
		`"1.5d2h"`:    38 * time.Hour,
		`"-1s"`:       -time.Second,
		`0`:           0,
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	for _, bad := range []string{`"1x"`, `"d"`, `true`, `"` + string(make([]byte, 1025)) + `"`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%q accepted as %v", bad, time.Duration(d))
		}
	}
	out, err := json.Marshal(struct {
		D Duration  `json:"d"`
		P *Duration `json:"p,omitempty"`
	}{D: Duration(time.Minute)})
	if err != nil || string(out) != `{"d":60000000000}` {
		t.Fatalf("%s %v", out, err)
	}
}
