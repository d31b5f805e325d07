package password

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Policy limits (NIST SP 800-63B §5.1.1.2: at least 8 characters, at least
// 64 allowed; we allow 256 so passphrases fit while bounding hashing input).
const (
	MinLength = 8
	MaxLength = 256
)

// Policy errors. Their messages are fit to show to the user.
var (
	ErrTooShort = errors.New("password: must be at least 8 characters")
	ErrTooLong  = errors.New("password: must be at most 256 characters")
	ErrCommon   = errors.New("password: is too common or easy to guess")
	ErrInvalid  = errors.New("password: contains invalid characters")
)

// Check applies the password policy. context holds words the password must
// not equal (the user's email, its local part, the product name), compared
// case-insensitively. It imposes no composition rules.
func Check(pw string, context ...string) error {
	if !utf8.ValidString(pw) || strings.ContainsRune(pw, 0) {
		return ErrInvalid
	}
	n := utf8.RuneCountInString(pw)
	if n < MinLength {
		return ErrTooShort
	}
	if n > MaxLength {
		return ErrTooLong
	}
	lower := strings.ToLower(pw)
	if _, ok := common[lower]; ok {
		return ErrCommon
	}
	for _, c := range context {
		c = strings.ToLower(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if lower == c {
			return ErrCommon
		}
		if local, _, ok := strings.Cut(c, "@"); ok && local != "" && lower == local {
			return ErrCommon
		}
	}
	if allSame(lower) || sequential(lower) {
		return ErrCommon
	}
	return nil
}

// allSame reports a password made of one repeated character ("aaaaaaaa").
func allSame(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	for _, r := range s {
		if r != first {
			return false
		}
	}
	return true
}

// sequential reports a run such as "12345678" or "abcdefgh" (ascending or
// descending by one code point).
func sequential(s string) bool {
	rs := []rune(s)
	up, down := true, true
	for i := 1; i < len(rs); i++ {
		if rs[i] != rs[i-1]+1 {
			up = false
		}
		if rs[i] != rs[i-1]-1 {
			down = false
		}
	}
	return up || down
}

// common holds the most frequent leaked passwords of 8 characters or more
// (lower-cased), after the published top-lists (SecLists, NCSC 100k).
var common = func() map[string]struct{} {
	list := []string{
		"password", "password1", "password12", "password123", "password1234", "passw0rd", "p@ssw0rd", "p@ssword",
		"12345678", "123456789", "1234567890", "12341234", "11111111", "00000000", "87654321", "123123123",
		"qwertyuiop", "qwerty123", "qwerty12", "qwertyui", "1q2w3e4r", "1q2w3e4r5t", "1qaz2wsx", "zaq12wsx",
		"asdfghjkl", "asdfasdf", "zxcvbnm1", "iloveyou", "iloveyou1", "sunshine", "princess", "football",
		"baseball", "basketball", "superman", "batman123", "starwars", "trustno1", "welcome1", "welcome123",
		"letmein1", "letmein123", "whatever", "computer", "internet", "michelle", "jennifer", "jordan23",
		"charlie1", "dragon123", "monkey123", "master123", "shadow123", "freedom1", "liverpool", "chelsea1",
		"changeme", "changeme1", "changeme123", "default1", "administrator", "admin123", "admin1234", "adminadmin",
		"rootroot", "test1234", "testtest", "testing123", "secret123", "mypassword", "abc12345", "abcd1234",
		"aa123456", "a1234567", "q1w2e3r4", "q1w2e3r4t5", "1234qwer", "qazwsxedc", "pass1234", "hello123",
		"helloworld", "loveyou1", "lovely12", "summer2024", "summer2025", "winter2024", "winter2025", "spring2025",
		"autumn2025", "summer2026", "winter2026", "spring2026", "autumn2026", "football1", "baseball1", "soccer123",
		"michael1", "jessica1", "ashley12", "daniel123", "anthony1", "matthew1", "samsung1", "google123",
		"facebook", "linkedin", "microsoft", "nintendo", "pokemon1", "minecraft", "fortnite", "blink182",
		"11223344", "12121212", "11112222", "55555555", "66666666", "88888888", "99999999", "147258369",
		"159753456", "987654321", "0987654321", "789456123", "123454321", "qweasdzxc", "asdf1234", "zxcvbnm123",
	}
	m := make(map[string]struct{}, len(list))
	for _, p := range list {
		m[p] = struct{}{}
	}
	return m
}()
