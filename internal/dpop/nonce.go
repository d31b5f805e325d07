package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Nonces issues and checks stateless server nonces (RFC 9449 §8): a nonce
// is a time bucket and its HMAC under a secret key, so that checking one
// needs no state. A nonce is good for the bucket it was issued in and the
// next one (between one and two periods).
type Nonces struct {
	key    []byte
	period time.Duration
}

// DefaultNoncePeriod is the bucket length of nonces.
const DefaultNoncePeriod = 2 * time.Minute

// NewNonces returns a nonce issuer keyed by key (a fresh random key when
// nil: nonces are then good only on this process).
func NewNonces(key []byte, period time.Duration) (*Nonces, error) {
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	if period <= 0 {
		period = DefaultNoncePeriod
	}
	return &Nonces{key: key, period: period}, nil
}

func (n *Nonces) mac(bucket uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], bucket)
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("dpop-nonce\x00"))
	m.Write(b[:])
	return append(b[:], m.Sum(nil)[:16]...)
}

// Issue returns the nonce of now's bucket.
func (n *Nonces) Issue(now time.Time) string {
	return base64.RawURLEncoding.EncodeToString(n.mac(uint64(now.UnixNano() / int64(n.period))))
}

// Valid reports whether nonce was issued by n in now's bucket or the one before.
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(raw) != 24 {
		return false
	}
	cur := uint64(now.UnixNano() / int64(n.period))
	bucket := binary.BigEndian.Uint64(raw[:8])
	if bucket != cur && bucket+1 != cur {
		return false
	}
	return hmac.Equal(raw, n.mac(bucket))
}
