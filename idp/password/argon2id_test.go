package password

import (
	"errors"
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("unexpected PHC prefix: %s", h)
	}
	p, salt, key, err := ParsePHC(h)
	if err != nil {
		t.Fatal(err)
	}
	if p != MinParams || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("params %+v salt %d key %d", p, len(salt), len(key))
	}
	h2, _ := Hash("correct horse battery staple")
	if h2 == h {
		t.Fatal("two hashes of the same password are equal: salt not random")
	}
	tests := []struct {
		name string
		pw   string
		ok   bool
	}{
		{"right", "correct horse battery staple", true},
		{"wrong", "correct horse battery stapler", false},
		{"empty", "", false},
		{"case", "Correct horse battery staple", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := Verify(h, tc.pw)
			if err != nil || ok != tc.ok || rehash {
				t.Fatalf("Verify = %v, %v, %v; want %v, false, nil", ok, rehash, err, tc.ok)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	strong, err := NewHasher(Params{Memory: 32768, Time: 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := Hash("a long enough password")
	ok, rehash, err := strong.Verify(old, "a long enough password")
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify(old) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	ok, rehash, _ = strong.Verify(old, "wrong password")
	if ok || rehash {
		t.Fatal("wrong password must not report a rehash")
	}
	fresh, _ := strong.Hash("a long enough password")
	if !strings.Contains(fresh, "m=32768,t=3,p=1") {
		t.Fatalf("hash %s does not carry the stronger parameters", fresh)
	}
	ok, rehash, _ = strong.Verify(fresh, "a long enough password")
	if !ok || rehash {
		t.Fatal("fresh hash: want ok and no rehash")
	}
}

func TestNewHasherRefusesWeakParams(t *testing.T) {
	for name, p := range map[string]Params{
		"memory": {Memory: 4096},
		"time":   {Time: 1, Memory: 19456},
		"salt":   {SaltLen: 8},
		"key":    {KeyLen: 16},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewHasher(p, 1); !errors.Is(err, ErrWeakParams) {
				t.Fatalf("err = %v, want ErrWeakParams", err)
			}
		})
	}
}

func TestParsePHCRefuses(t *testing.T) {
	good, _ := Hash("whatever you like")
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	tests := map[string]string{
		"empty":         "",
		"argon2i":       "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"bcrypt":        "$2a$10$abcdefghijklmnopqrstuu5yJ0Y1xN0G0pJ6Xb0u2b9q5J3tY6aK",
		"version 16":    "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"no version":    "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key,
		"param order":   "$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key,
		"zero time":     "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key,
		"zero threads":  "$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
		"huge memory":   "$argon2id$v=19$m=99999999,t=2,p=1$" + salt + "$" + key,
		"huge time":     "$argon2id$v=19$m=19456,t=1000,p=1$" + salt + "$" + key,
		"leading zero":  "$argon2id$v=19$m=019456,t=2,p=1$" + salt + "$" + key,
		"sign":          "$argon2id$v=19$m=+19456,t=2,p=1$" + salt + "$" + key,
		"padded salt":   "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key,
		"short salt":    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$" + key,
		"short key":     "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$a2V5",
		"extra field":   good + "$x",
		"trailing junk": good + " ",
		"url base64":    "$argon2id$v=19$m=19456,t=2,p=1$" + strings.ReplaceAll(salt, "+", "-") + "-_$" + key,
		"too long":      good + strings.Repeat("A", 600),
	}
	for name, phc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, _, err := ParsePHC(phc); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParsePHC(%q) err = %v, want ErrMalformed", phc, err)
			}
			if ok, _, err := Verify(phc, "whatever you like"); ok || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify = %v, %v; want false, ErrMalformed", ok, err)
			}
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	if Default().VerifyDummy("anything") {
		t.Fatal("VerifyDummy must report false")
	}
	if Default().dummy == "" || !IsHash(Default().dummy) {
		t.Fatal("dummy hash not prepared")
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		pw   string
		ctx  []string
		want error
	}{
		{"ok passphrase", "correct horse battery staple", nil, nil},
		{"ok 8 chars", "x7#kQ!p2", nil, nil},
		{"ok unicode 8 runes", "pässwörd", nil, nil},
		{"too short", "abc1234", nil, ErrTooShort},
		{"too short runes", "äöüäöüä", nil, ErrTooShort},
		{"too long", strings.Repeat("ab", 129), nil, ErrTooLong},
		{"max length", strings.Repeat("ab", 128), nil, nil},
		{"common", "password123", nil, ErrCommon},
		{"common any case", "PassWord123", nil, ErrCommon},
		{"repeated", "zzzzzzzzzz", nil, ErrCommon},
		{"sequence", "abcdefghi", nil, ErrCommon},
		{"descending", "98765432", nil, ErrCommon},
		{"equals email", "Alice@Example.com", []string{"alice@example.com"}, ErrCommon},
		{"equals local part", "alice.smith", []string{"alice.smith@example.com"}, ErrCommon},
		{"invalid utf8", "abc\xffdefgh", nil, ErrInvalid},
		{"nul", "abcdefgh\x00", nil, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check(tc.pw, tc.ctx...); !errors.Is(err, tc.want) {
				t.Fatalf("Check(%q) = %v, want %v", tc.pw, err, tc.want)
			}
		})
	}
}

func FuzzParsePHC(f *testing.F) {
	good, _ := Hash("seed password")
	f.Add(good)
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=4294967295,t=2,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2i$v=19$m=19456,t=2,p=1$$")
	f.Add("$$$$$")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := ParsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if p.Memory > maxMemory || p.Time > maxTime || p.Time == 0 || p.Threads == 0 ||
			len(salt) < minSalt || len(salt) > maxSalt || len(key) < minKey || len(key) > maxKey {
			t.Fatalf("accepted out-of-bounds params %+v salt %d key %d", p, len(salt), len(key))
		}
		// A parsed hash re-formats to exactly the input (canonical form only).
		if got := format(p, salt, key); got != s {
			t.Fatalf("non-canonical PHC accepted: %q re-formats to %q", s, got)
		}
	})
}

// FuzzVerify runs Verify on attacker-shaped hashes with small costs only
// (Memory is capped by the parser, but keep the fuzzer fast).
func FuzzVerify(f *testing.F) {
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "pw")
	f.Add("garbage", "")
	f.Fuzz(func(t *testing.T, phc, pw string) {
		p, _, _, err := ParsePHC(phc)
		if err != nil || p.Memory > 1024 || p.Time > 2 {
			return
		}
		ok, _, err := Verify(phc, pw)
		if err != nil {
			t.Fatalf("Verify after a successful parse: %v", err)
		}
		_ = ok
	})
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("benchmark password"); err != nil {
			b.Fatal(err)
		}
	}
}

// One rule for operator-written hashes; the parser's caps bound a stored
// record's cost (1 GiB, 16 passes, 16 lanes).
func TestCheckHashAndCaps(t *testing.T) {
	good, err := Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHash(good); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		phc  string
		want error
	}{
		"weak t":     {"$argon2id$v=19$m=19456,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", ErrWeakParams},
		"weak m":     {"$argon2id$v=19$m=8192,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", ErrWeakParams},
		"2 GiB":      {"$argon2id$v=19$m=2097152,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", ErrMalformed},
		"t=17":       {"$argon2id$v=19$m=19456,t=17,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", ErrMalformed},
		"p=17":       {"$argon2id$v=19$m=19456,t=2,p=17$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", ErrMalformed},
		"not argon2": {"$2a$10$abc", ErrMalformed},
	} {
		if err := CheckHash(c.phc); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
