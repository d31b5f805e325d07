package resourceguard

import (
	"encoding/json"
	"testing"
)

// FuzzJSONScan: the scanner accepts exactly what encoding/json accepts as
// one JSON text, and decodes strings as encoding/json does.
func FuzzJSONScan(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-3,"x\u00e9\n",true,false,null,{}]}`, `[]`, ` "s" `, `-0`, `01`, `1.`, `"\x"`, `"\ud800"`, "\"\xff\"",
		`{"a":1,}`, `[1,]`, `{"a" 1}`, `tru`, `{"a":{"b":[[[]]]}}`, "\"a\tb\"", `1e+`, `-`, `{"k":"v"} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := scanDoc(b, func(s *jscan) error { return s.value(0) })
		if (err == nil) != json.Valid(b) {
			t.Fatalf("scanner ok=%v, json.Valid=%v for %q", err == nil, json.Valid(b), b)
		}
		if err != nil || len(b) == 0 {
			return
		}
		var want string
		if json.Unmarshal(b, &want) == nil {
			s := &jscan{b: b}
			s.ws()
			if got := stringAt(b[s.i:]); got != want {
				t.Fatalf("string %q: scanner %q, encoding/json %q", b, got, want)
			}
		}
	})
}
