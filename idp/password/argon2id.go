package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	// Memory in KiB (m).
	Memory uint32
	// Time is the number of passes (t).
	Time uint32
	// Threads is the degree of parallelism (p).
	Threads uint8
	// SaltLen and KeyLen are in bytes.
	SaltLen uint32
	KeyLen  uint32
}

// MinParams is the floor for new hashes: OWASP's argon2id recommendation
// (m=19 MiB, t=2, p=1) with a 16-byte salt and a 32-byte key.
var MinParams = Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds accepted when parsing a stored hash (an account password or a
// client secret): they keep a corrupt or hostile record from making Verify
// allocate unbounded memory or spin forever.
const (
	maxMemory  = 1 << 20 // 1 GiB in KiB
	maxTime    = 16
	maxThreads = 16
	minSalt    = 8
	maxSalt    = 64
	minKey     = 16
	maxKey     = 64
	maxPHCSize = 512
)

var (
	// ErrMalformed is returned for a string that is not an argon2id PHC hash
	// this package accepts.
	ErrMalformed = errors.New("password: malformed argon2id hash")
	// ErrWeakParams is returned by NewHasher for parameters below MinParams.
	ErrWeakParams = errors.New("password: argon2id parameters below the minimum")
)

var b64 = base64.RawStdEncoding

// Hasher hashes and verifies passwords with fixed parameters. It bounds the
// number of hashes computed at once (each one holds Params.Memory KiB), so a
// burst of logins cannot exhaust memory. A Hasher is safe for concurrent use.
type Hasher struct {
	p     Params
	sem   chan struct{}
	once  sync.Once
	dummy string
}

// NewHasher returns a Hasher for p. Zero fields take MinParams' value; a
// field below the minimum is an error. concurrency bounds simultaneous hashes
// (0: 2×GOMAXPROCS).
func NewHasher(p Params, concurrency int) (*Hasher, error) {
	if p.Memory == 0 {
		p.Memory = MinParams.Memory
	}
	if p.Time == 0 {
		p.Time = MinParams.Time
	}
	if p.Threads == 0 {
		p.Threads = MinParams.Threads
	}
	if p.SaltLen == 0 {
		p.SaltLen = MinParams.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = MinParams.KeyLen
	}
	if p.Memory < MinParams.Memory || p.Time < MinParams.Time || p.SaltLen < MinParams.SaltLen || p.KeyLen < MinParams.KeyLen {
		return nil, fmt.Errorf("%w: m=%d t=%d p=%d salt=%d key=%d", ErrWeakParams, p.Memory, p.Time, p.Threads, p.SaltLen, p.KeyLen)
	}
	if p.Memory > maxMemory || p.Time > maxTime || p.Threads > maxThreads || p.SaltLen > maxSalt || p.KeyLen > maxKey {
		return nil, fmt.Errorf("password: argon2id parameters too large: m=%d t=%d salt=%d key=%d", p.Memory, p.Time, p.SaltLen, p.KeyLen)
	}
	if concurrency <= 0 {
		concurrency = 2 * runtime.GOMAXPROCS(0)
	}
	return &Hasher{p: p, sem: make(chan struct{}, concurrency)}, nil
}

var defaultHasher, _ = NewHasher(MinParams, 0)

// Default returns the package's Hasher with MinParams.
func Default() *Hasher { return defaultHasher }

// Hash hashes pw with the default parameters.
func Hash(pw string) (string, error) { return defaultHasher.Hash(pw) }

// Verify checks pw against phc with the default Hasher.
func Verify(phc, pw string) (ok, needsRehash bool, err error) { return defaultHasher.Verify(phc, pw) }

// Params returns the Hasher's parameters.
func (h *Hasher) Params() Params { return h.p }

// Hash returns a PHC string for pw with a fresh random salt.
func (h *Hasher) Hash(pw string) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := h.derive([]byte(pw), salt, h.p)
	return format(h.p, salt, key), nil
}

// Verify reports whether pw matches phc. needsRehash is true when the match
// was made with parameters weaker than the Hasher's (the caller should store
// a fresh Hash). A malformed phc returns ErrMalformed.
func (h *Hasher) Verify(phc, pw string) (ok, needsRehash bool, err error) {
	p, salt, key, err := ParsePHC(phc)
	if err != nil {
		return false, false, err
	}
	got := h.derive([]byte(pw), salt, p)
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	needsRehash = p.Memory < h.p.Memory || p.Time < h.p.Time || p.Threads < h.p.Threads ||
		uint32(len(salt)) < h.p.SaltLen || uint32(len(key)) < h.p.KeyLen
	return true, needsRehash, nil
}

// VerifyDummy does the work of a Verify against a fixed hash with the
// Hasher's parameters and always reports false. Call it when the account is
// unknown (or has no password) so the response takes as long as for a known
// account.
func (h *Hasher) VerifyDummy(pw string) bool {
	h.once.Do(func() {
		d, err := h.Hash("dummy password for timing equalisation")
		if err != nil {
			// crypto/rand failing is fatal elsewhere too; fall back to a
			// well-formed hash so the work is still done.
			d = format(h.p, make([]byte, h.p.SaltLen), make([]byte, h.p.KeyLen))
		}
		h.dummy = d
	})
	_, _, _ = h.Verify(h.dummy, pw)
	return false
}

func (h *Hasher) derive(pw, salt []byte, p Params) []byte {
	h.sem <- struct{}{}
	defer func() { <-h.sem }()
	return argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

func format(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// ParsePHC parses an argon2id PHC string. It accepts only version 19, the
// parameters in the order m,t,p, unpadded standard base64, and bounded sizes.
func ParsePHC(phc string) (p Params, salt, key []byte, err error) {
	if len(phc) > maxPHCSize {
		return Params{}, nil, nil, ErrMalformed
	}
	parts := strings.Split(phc, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		return Params{}, nil, nil, ErrMalformed
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return Params{}, nil, nil, ErrMalformed
	}
	m, ok1 := param(kv[0], "m=", maxMemory)
	t, ok2 := param(kv[1], "t=", maxTime)
	th, ok3 := param(kv[2], "p=", maxThreads)
	if !ok1 || !ok2 || !ok3 || t < 1 || th < 1 || m < 8*th {
		return Params{}, nil, nil, ErrMalformed
	}
	salt, err1 := b64.Strict().DecodeString(parts[4])
	key, err2 := b64.Strict().DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < minSalt || len(salt) > maxSalt || len(key) < minKey || len(key) > maxKey {
		return Params{}, nil, nil, ErrMalformed
	}
	p = Params{Memory: m, Time: t, Threads: uint8(th), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	return p, salt, key, nil
}

func param(s, prefix string, max uint64) (uint32, bool) {
	v, ok := strings.CutPrefix(s, prefix)
	if !ok || v == "" || len(v) > 10 || (len(v) > 1 && v[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n > max {
		return 0, false
	}
	return uint32(n), true
}

// IsHash reports whether s parses as an argon2id PHC hash.
func IsHash(s string) bool {
	_, _, _, err := ParsePHC(s)
	return err == nil
}

// CheckHash accepts a PHC string written by an operator (a seeded account's
// password hash, a client's secret hash): it must parse and be at least as
// costly as MinParams (m and t). Hashes read back from the store are only
// parsed (Verify), so a weaker one can still verify and be rehashed.
func CheckHash(phc string) error {
	p, _, _, err := ParsePHC(phc)
	if err != nil {
		return err
	}
	if p.Memory < MinParams.Memory || p.Time < MinParams.Time {
		return fmt.Errorf("%w: m=%d,t=%d (at least m=%d,t=%d)", ErrWeakParams, p.Memory, p.Time, MinParams.Memory, MinParams.Time)
	}
	return nil
}
