package resourceguard

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadBody: the declared length only sizes the buffer; what is read is
// the body itself, bounded by max+1 (so the caller can tell "over").
func TestReadBody(t *testing.T) {
	const max = 16
	for _, c := range []struct {
		name     string
		body     io.Reader
		declared int64
		want     string
		err      bool
	}{
		{"exact", strings.NewReader("hello"), 5, "hello", false},
		{"unknown length", strings.NewReader("hello"), -1, "hello", false},
		{"longer than declared", strings.NewReader("hello world"), 5, "hello world", false},
		{"longer than declared and over the limit", strings.NewReader(strings.Repeat("x", 40)), 5, strings.Repeat("x", max+1), false},
		{"declared over the limit", strings.NewReader(strings.Repeat("x", 40)), 40, strings.Repeat("x", max+1), false},
		{"shorter than declared", strings.NewReader("hi"), 5, "", true},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader("hello world")), 5, "hello world", false},
		{"data with EOF", iotest.DataErrReader(strings.NewReader("hello")), 5, "hello", false},
		{"read error", iotest.ErrReader(errors.New("boom")), 5, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := readBody(c.body, c.declared, max)
			if c.err {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, []byte(c.want)) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestReadBodyLargeDeclaredLength: a large Content-Length does not size a
// buffer before anything is read (it would let a client that sends little
// make the guard hold much); the body is read as it comes.
func TestReadBodyLargeDeclaredLength(t *testing.T) {
	got, err := readBody(strings.NewReader("hi"), maxPreallocBody+1, 1<<20)
	if err != nil || string(got) != "hi" {
		t.Fatalf("got %q, %v; want the 2 bytes sent", got, err)
	}
	if cap(got) > maxPreallocBody {
		t.Fatalf("buffer of %d bytes for a 2-byte body", cap(got))
	}
}

// TestValidB64TokenTable: the table is the RFC 9110 token68 alphabet.
func TestValidB64TokenTable(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := strings.IndexByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/", byte(c)) >= 0
		if b64TokenChar[c] != want {
			t.Errorf("byte %q: %v, want %v", byte(c), b64TokenChar[c], want)
		}
	}
	for s, want := range map[string]bool{"abc": true, "a.b.c==": true, "=": false, "": false, "a=b": false, "a b": false, "a~+/": true} {
		if validB64Token(s) != want {
			t.Errorf("validB64Token(%q) = %v", s, !want)
		}
	}
}
