// Package jsonobject decodes one JSON object strictly: the one parser for
// the attacker-supplied objects the product reads member by member (DCR
// registration bodies, CIMD documents, JWT headers and claims, JWK sets).
// It imports only the standard library, so every package may use it.
package jsonobject

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"
)

// Errors are short and never echo input.
var (
	ErrNotUTF8   = errors.New("not valid UTF-8")
	ErrNotObject = errors.New("not a JSON object")
	ErrInvalid   = errors.New("not a valid JSON object")
	ErrDuplicate = errors.New("a duplicate member")
	ErrTrailing  = errors.New("data after the JSON object")
)

// Decode parses exactly one JSON object and returns its members by exact
// name. It refuses invalid UTF-8, duplicate members and anything after the
// object (whitespace aside): each is a parser-differential foothold, where
// another parser would read a different value than the one we checked.
func Decode(raw []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(raw) {
		return nil, ErrNotUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, ErrNotObject
	}
	members := make(map[string]json.RawMessage, 16)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, ErrInvalid
		}
		key, ok := tok.(string)
		if !ok {
			return nil, ErrInvalid
		}
		if _, dup := members[key]; dup {
			return nil, ErrDuplicate
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, ErrInvalid
		}
		members[key] = v
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, ErrInvalid
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ErrTrailing
	}
	return members, nil
}
