package resourceguard

import (
	"encoding/json"
	"reflect"
	"strings"
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

// TestKeyIs checks member-name matching against encoding/json's rule
// (Unicode simple case folding) on the paths that avoid decoding the key.
func TestKeyIs(t *testing.T) {
	for _, tc := range []struct {
		raw  string // the key's raw content, between the quotes
		name string
		want bool
	}{
		{"method", "method", true},
		{"Method", "method", true},
		{"METHOD", "method", true},
		{"params", "method", false}, // same length, other name
		{"method_", "method", false},
		{"ID", "id", true},
		{"iD", "id", true},
		{"ie", "id", false},
		{`m\u0065thod`, "method", true}, // escaped
		{`\u004dETHOD`, "method", true},
		{"param\u017f", "params", true}, // U+017F folds to s: longer in bytes
		{"\u212aey", "key", true},       // U+212A KELVIN SIGN folds to k
		{"m\u00e9thod", "method", false},
		{"@ethod", "`ethod", false}, // neighbours of the letter ranges do not fold
		{"[d", "{d", false},
	} {
		s := &jscan{b: []byte(`"` + tc.raw + `"`)}
		raw, esc, err := s.str()
		if err != nil {
			t.Fatalf("%q: %v", tc.raw, err)
		}
		if got := keyIs(raw, esc, tc.name); got != tc.want {
			t.Errorf("keyIs(%q, %q) = %v, want %v", tc.raw, tc.name, got, tc.want)
		}
		// encoding/json agrees: the key fills a field tagged name.
		typ := reflect.StructOf([]reflect.StructField{{Name: "F", Type: reflect.TypeFor[int](), Tag: reflect.StructTag(`json:"` + tc.name + `"`)}})
		v := reflect.New(typ)
		if err := json.Unmarshal([]byte(`{"`+tc.raw+`":1}`), v.Interface()); err != nil {
			t.Fatal(err)
		}
		if got := v.Elem().Field(0).Int() == 1; got != tc.want {
			t.Errorf("encoding/json matches %q to %q: %v, want %v", tc.raw, tc.name, got, tc.want)
		}
	}
}

// scanDoc scans one whole JSON text with fn (startDoc, fn, endDoc).
func scanDoc(b []byte, fn func(s *jscan) error) error {
	s := startDoc(b)
	if err := fn(&s); err != nil {
		return err
	}
	return s.endDoc()
}

// TestSkipPlain checks the word-at-a-time skip against a byte loop: every
// byte value at every offset of a word, after and before bytes that make
// the word arithmetic borrow (0x00, 0x1f, '"', '\\', 0x80, 0xff), from every
// start, near the end of the text too.
func TestSkipPlain(t *testing.T) {
	naive := func(b []byte, i int) int {
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		return i
	}
	fill := []byte{'a', 0x00, 0x1f, 0x20, '"', '\\', 0x7f, 0x80, 0xff}
	for n := 0; n <= 20; n++ {
		for p := 0; p < n; p++ {
			for v := 0; v < 256; v++ {
				for _, after := range fill {
					b := make([]byte, n)
					for i := range b {
						b[i] = 'a'
					}
					b[p] = byte(v)
					if p+1 < n {
						b[p+1] = after
					}
					for start := 0; start <= p; start++ {
						if got, want := skipPlain(b, start), naive(b, start); got != want {
							t.Fatalf("skipPlain(%q, %d) = %d, want %d", b, start, got, want)
						}
					}
				}
			}
		}
	}
}

// FuzzMemberIs: the length shortcuts of member.is agree with decoding the
// key and comparing as encoding/json does, for every name the guard looks
// for.
func FuzzMemberIs(f *testing.F) {
	for _, s := range []string{`name`, `NAME`, `n\u0061me`, "param\u017f", "\u212aey", `id`, `iD`, `names`, `nam\u00e9`, `\/ame`, "titl\xff", `description`, `DESCRIPTION`, `resu\u006ct`} {
		f.Add([]byte(s))
	}
	names := []string{"name", "method", "id", "params", "uri", "result", "tools", "title", "description", "key"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := &jscan{b: append(append([]byte{'"'}, raw...), '"')}
		key, esc, err := s.str()
		if err != nil || s.i != len(s.b) {
			return // not one JSON string's content
		}
		decoded := strValue(key, esc)
		for _, name := range names {
			if got, want := memberName(key, esc).is(name), strings.EqualFold(decoded, name); got != want {
				t.Fatalf("key %q is %q: %v, want %v", raw, name, got, want)
			}
		}
	})
}

// TestJSONScanDepth: the nesting limit is encoding/json's, for objects,
// arrays and a mix, at the limit and one past it, skipped by value and read
// by object and array.
func TestJSONScanDepth(t *testing.T) {
	nest := func(n int, mixed bool) []byte {
		var b []byte
		for i := range n {
			if mixed && i%2 == 1 {
				b = append(b, `{"k":`...)
			} else {
				b = append(b, '[')
			}
		}
		b = append(b, '1')
		for i := n - 1; i >= 0; i-- {
			if mixed && i%2 == 1 {
				b = append(b, '}')
			} else {
				b = append(b, ']')
			}
		}
		return b
	}
	for _, mixed := range []bool{false, true} {
		for _, n := range []int{1, 31, 32, 33, 100, maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
			b := nest(n, mixed)
			want := json.Valid(b)
			if got := scanDoc(b, func(s *jscan) error { return s.value(0) }) == nil; got != want {
				t.Errorf("value: depth %d (mixed %v): ok %v, encoding/json %v", n, mixed, got, want)
			}
			// Under an array read with a callback, one level down.
			wrapped := append(append([]byte{'['}, b...), ']')
			got := scanDoc(wrapped, func(s *jscan) error { return s.array(0, func() error { return s.value(1) }) }) == nil
			if want := json.Valid(wrapped); got != want {
				t.Errorf("array+value: depth %d (mixed %v): ok %v, encoding/json %v", n+1, mixed, got, want)
			}
		}
	}
}
