package idp

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration in a kind's JSON options, with the JSON form
// of Caddy's caddy.Duration (the config's other durations): an integer of
// nanoseconds, or a string that ParseDuration accepts ("720h", "30d").
// It marshals as nanoseconds.
type Duration time.Duration

// UnmarshalJSON accepts nanoseconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return errors.New("idp: empty duration")
	}
	var dur time.Duration
	var err error
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		dur, err = ParseDuration(strings.Trim(string(b), `"`))
	} else {
		err = json.Unmarshal(b, &dur)
	}
	*d = Duration(dur)
	return err
}

// ParseDuration is time.ParseDuration plus the unit "d" (24h), as Caddy's
// caddy.ParseDuration: "1d12h" is 36h. Input is at most 1024 bytes.
func ParseDuration(s string) (time.Duration, error) {
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
