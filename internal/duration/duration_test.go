package duration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The forms a Caddy config accepts for a duration (caddy.Duration); the
// caddymodule test TestConfigDurationIsCaddyDuration compares this type
// with Caddy's own on the same inputs.
func TestParseAndJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`"90s"`: 90 * time.Second, `"1d"`: 24 * time.Hour, `"1d12h"`: 36 * time.Hour,
		`"0.5d"`: 12 * time.Hour, `1000000000`: time.Second, `"-2h"`: -2 * time.Hour,
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if time.Duration(d) != want {
			t.Errorf("%s = %v, want %v", in, time.Duration(d), want)
		}
	}
	for _, in := range []string{`"x"`, `"1y"`, `"d"`, `true`, `"` + strings.Repeat("1", 1030) + `s"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%.20q: accepted as %v", in, time.Duration(d))
		}
	}
	if err := (*Duration).UnmarshalJSON(new(Duration), nil); err == nil {
		t.Error("empty input accepted")
	}
	b, _ := json.Marshal(Duration(time.Minute))
	if string(b) != "60000000000" {
		t.Errorf("marshal = %s, want nanoseconds", b)
	}
}
