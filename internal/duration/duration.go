// Package duration is the one definition of the configuration's durations:
// the JSON form of Caddy's caddy.Duration (an integer of nanoseconds, or a
// string such as "720h" or "30d") without importing Caddy, so that the
// config model, the upstream provider kinds and the admin API read
// durations the way a Caddy config does. It imports only the standard
// library.
package duration

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration with caddy.Duration's JSON: it unmarshals a
// JSON integer as nanoseconds or a string with Parse, and marshals as
// nanoseconds (caddy.Duration has no MarshalJSON either).
type Duration time.Duration

// UnmarshalJSON accepts nanoseconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty duration")
	}
	var dur time.Duration
	var err error
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		dur, err = Parse(strings.Trim(string(b), `"`))
	} else {
		err = json.Unmarshal(b, &dur)
	}
	*d = Duration(dur)
	return err
}

// Parse is time.ParseDuration plus the unit "d" (24h), as caddy.ParseDuration:
// "1d12h" is 36h. Input is at most 1024 bytes.
func Parse(s string) (time.Duration, error) {
	if len(s) > 1024 {
		return 0, errors.New("parsing duration: input string too long")
	}
	var inNumber bool
	var numStart int
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == 'd' {
			days, err := strconv.ParseFloat(s[numStart:i], 64)
			if err != nil {
				return 0, err
			}
			s = s[:numStart] + strconv.FormatFloat(days*24, 'f', -1, 64) + "h" + s[i+1:]
			i--
			continue
		}
		if !inNumber {
			numStart = i
		}
		inNumber = ch >= '0' && ch <= '9' || ch == '.' || ch == '-' || ch == '+'
	}
	return time.ParseDuration(s)
}
