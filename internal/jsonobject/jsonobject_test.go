package jsonobject

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{`{"a":1,"b":[2],"c":{"d":null}}`, nil},
		{` {"a":1} ` + "\n", nil},
		{`{}`, nil},
		{``, ErrNotObject},
		{`[]`, ErrNotObject},
		{`"x"`, ErrNotObject},
		{`{"a":1,"a":2}`, ErrDuplicate},
		{`{"a":1}{}`, ErrTrailing},
		{`{"a":1}x`, ErrTrailing},
		{`{"a":1} 1`, ErrTrailing},
		{`{"a":}`, ErrInvalid},
		{`{"a":1`, ErrInvalid},
		{"{\"a\":\"\xff\"}", ErrNotUTF8},
	}
	for _, c := range cases {
		m, err := Decode([]byte(c.in))
		if !errors.Is(err, c.want) {
			t.Errorf("Decode(%q) = %v, want %v", c.in, err, c.want)
		}
		if c.want == nil && m == nil {
			t.Errorf("Decode(%q): no members", c.in)
		}
	}
	m, _ := Decode([]byte(`{"a":[1, 2]}`))
	if string(m["a"]) != "[1, 2]" {
		t.Fatalf("member a = %s", m["a"])
	}
}

// Whatever Decode accepts is one object that encoding/json reads the same
// way, member for member.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"a":1}x`, `[]`, `{"a":{"b":[1,"x",null]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		var std map[string]json.RawMessage
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatalf("accepted %q that encoding/json refuses: %v", b, err)
		}
		if len(std) != len(m) {
			t.Fatalf("%q: %d members, encoding/json sees %d", b, len(m), len(std))
		}
	})
}
