package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpauth/caddy-mcpauth/config"
)

// config.Duration has caddy.Duration's JSON semantics: the same inputs give
// the same value or both fail, and both marshal alike.
func TestConfigDurationIsCaddyDuration(t *testing.T) {
	for _, in := range []string{`0`, `1`, `-5`, `90000000000`, `"300ms"`, `"1.5h"`, `"2h45m"`, `"1d"`, `"1.5d2h"`, `"-1d"`,
		`"+3m"`, `"1µs"`, `"off"`, `"1x"`, `"d"`, `""`, `true`, `1.5`, `"` + strings.Repeat("1", 1025) + `s"`} {
		var c caddy.Duration
		var d config.Duration
		errC, errD := json.Unmarshal([]byte(in), &c), json.Unmarshal([]byte(in), &d)
		if (errC == nil) != (errD == nil) || int64(c) != int64(d) {
			t.Errorf("%s: caddy %d (%v), config %d (%v)", in, c, errC, d, errD)
		}
		bc, _ := json.Marshal(c)
		bd, _ := json.Marshal(d)
		if string(bc) != string(bd) {
			t.Errorf("%s: marshals as %s, caddy as %s", in, bd, bc)
		}
	}
}
