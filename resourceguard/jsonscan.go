package resourceguard

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"strings"
)

// A small validating JSON scanner for the guard's two hot paths: reading
// the method and target of a JSON-RPC request, and removing tools from a
// tools/list result. It walks the text once, without decoding values it
// does not need and without allocating for them, and refuses exactly what
// encoding/json refuses as syntax (a differential fuzz test checks it):
// what the guard passes on is what the upstream and clients parse.

var errJSONSyntax = errors.New("resourceguard: invalid JSON")

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

type jscan struct {
	b []byte
	i int
}

func (s *jscan) ws() {
	// One comparison for the usual case, a byte that is not white space
	// (every white space byte is at most ' ').
	for s.i < len(s.b) && s.b[s.i] <= ' ' {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value skips one value (after white space) and leaves s.i after it.
func (s *jscan) value(depth int) error {
	s.ws()
	if s.i >= len(s.b) {
		return errJSONSyntax
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth, nil)
	case c == '[':
		return s.array(depth, nil)
	case c == '"':
		_, _, err := s.str()
		return err
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return errJSONSyntax
}

func (s *jscan) lit(w string) error {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return errJSONSyntax
	}
	s.i += len(w)
	return nil
}

func (s *jscan) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *jscan) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return errJSONSyntax
	}
	if s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return errJSONSyntax
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	return nil
}

// strPlain marks the bytes a string may hold without an escape.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans a string at s.i and returns its raw content (between the
// quotes) and whether it has escapes.
func (s *jscan) str() (raw []byte, esc bool, err error) {
	start := s.i + 1
	b := s.b
	for i := skipPlain(b, start); i < len(b); i = skipPlain(b, i) {
		switch b[i] {
		case '"':
			s.i = i + 1
			return b[start:i], esc, nil
		case '\\':
			esc = true
			i++
			if i >= len(b) {
				return nil, false, errJSONSyntax
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return nil, false, errJSONSyntax
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, false, errJSONSyntax
					}
				}
				i += 4
			default:
				return nil, false, errJSONSyntax
			}
			i++
		default: // a control character
			return nil, false, errJSONSyntax
		}
	}
	return nil, false, errJSONSyntax
}

// skipPlain returns the index of the first byte at or after i that a string
// may not hold unescaped ('"', '\\' or a control character), or len(b). It
// tests eight bytes a step while eight remain in b, reading past the string
// into the rest of the text: the first byte it stops at is exact (the
// borrows of the word arithmetic flag only bytes above a true match).
func skipPlain(b []byte, i int) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for ; i >= 0 && i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (lo * '"')
		e := x ^ (lo * '\\')
		if m := ((q-lo)&^q | (e-lo)&^e | (x-lo*0x20)&^x) & hi; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && strPlain[b[i]] {
		i++
	}
	return i
}

// strValue decodes a string's raw content as encoding/json does.
func strValue(raw []byte, esc bool) string {
	if !esc && isASCII(raw) {
		return string(raw)
	}
	// Escapes or non-ASCII bytes (invalid UTF-8 becomes U+FFFD): exactly
	// as encoding/json decodes them.
	var v string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	_ = json.Unmarshal(q, &v) // already validated
	return v
}

// object scans an object at s.i. For each member, fn (when not nil) is
// called with s.i at the member's value (white space skipped) and must scan
// that value (s.value, or a nested object/array call); a nil fn skips it.
func (s *jscan) object(depth int, fn func(key []byte, esc bool) error) error {
	if depth++; depth > maxJSONDepth {
		return errJSONSyntax
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errJSONSyntax
		}
		key, esc, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errJSONSyntax
		}
		s.i++
		s.ws()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		if fn != nil {
			err = fn(key, esc)
		} else {
			err = s.value(depth)
		}
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// array scans an array at s.i. For each element, fn (when not nil) is
// called with s.i at the element and must scan it; a nil fn skips it.
func (s *jscan) array(depth int, fn func() error) error {
	if depth++; depth > maxJSONDepth {
		return errJSONSyntax
	}
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		var err error
		if fn != nil {
			err = fn()
		} else {
			err = s.value(depth)
		}
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// span scans the value at s.i and returns where it starts and ends.
func (s *jscan) span(depth int) ([2]int, error) {
	vs := s.i
	err := s.value(depth)
	return [2]int{vs, s.i}, err
}

// keyIs reports whether a member name equals name as encoding/json matches
// it (Unicode case folding).
func keyIs(key []byte, esc bool, name string) bool {
	return memberName(key, esc).is(name)
}

// member is a member name as read (raw content, escaped or not), compared
// with names as encoding/json matches them (Unicode case folding).
type member struct {
	key []byte
	esc bool
}

func memberName(key []byte, esc bool) member { return member{key: key, esc: esc} }

// is reports whether the member name equals name, which must be ASCII. An
// escape or a non-ASCII character takes more bytes than the one ASCII
// character it can stand for or fold to (U+017F folds to 's', U+212A to
// 'k'), so a key shorter than name never matches, one of name's length
// matches only as unescaped ASCII, and only a longer key that is escaped or
// not ASCII needs decoding: the usual member is told apart by its length.
func (m member) is(name string) bool {
	switch {
	case len(m.key) < len(name):
		return false
	case len(m.key) == len(name):
		return !m.esc && (string(m.key) == name || asciiEqualFold(m.key, name))
	case !m.esc && isASCII(m.key):
		return false
	}
	return strings.EqualFold(strValue(m.key, m.esc), name)
}

// asciiEqualFold is strings.EqualFold for ASCII key of name's length.
func asciiEqualFold(key []byte, name string) bool {
	for i := range len(key) {
		a, b := key[i], name[i]
		if a == b {
			continue
		}
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// errTrailing: data after the JSON text.
var errTrailing = errors.New("resourceguard: trailing data after JSON value")

// startDoc starts the scan of one whole JSON text: a value with nothing but
// white space around it (endDoc checks the end). The scanner is a value, so
// that it stays on the caller's stack (one allocation per request less than
// a scanner handed to a callback).
func startDoc(b []byte) jscan {
	s := jscan{b: b}
	s.ws()
	return s
}

// endDoc checks that only white space follows the value.
func (s *jscan) endDoc() error {
	s.ws()
	if s.i != len(s.b) {
		return errTrailing
	}
	return nil
}
