package authserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mcpauth/caddy-mcpauth/internal/pgtest"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
	"github.com/mcpauth/caddy-mcpauth/storage/pgstore"
)

// atRestBackend is a real store with a way to read its raw bytes (the
// bbolt file; the PostgreSQL rows as text), as an attacker with the file or
// a database dump would.
type atRestBackend struct {
	store storage.Keys
	raw   func(t *testing.T) []byte
	// live is raw's view of the live records only: bbolt does not scrub
	// the pages a write frees, so an overwritten plaintext key lingers in
	// the file until the page is reused; live copies the store into a fresh
	// file first (what `mcpauth migrate-store` to a new file does). Live
	// PostgreSQL rows are what raw reads already.
	live func(t *testing.T) []byte
	// reopen returns another instance on the same data.
	reopen func(t *testing.T) storage.Keys
}

// atRestBackends runs f on bbolt and on PostgreSQL. The PostgreSQL case
// needs MCPAUTH_TEST_POSTGRES_DSN: it fails under CI=true or
// MCPAUTH_TEST_STRICT=1 when unset and is skipped, saying why, otherwise.
func atRestBackends(t *testing.T, f func(t *testing.T, b atRestBackend)) {
	t.Run("bbolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.db")
		st, err := bboltstore.Open(path, bboltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		f(t, atRestBackend{
			store: st,
			raw: func(t *testing.T) []byte {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			live: func(t *testing.T) []byte {
				var recs []storage.Record
				if err := st.Export(t.Context(), func(r storage.Record) error { recs = append(recs, r); return nil }); err != nil {
					t.Fatal(err)
				}
				freshPath := filepath.Join(t.TempDir(), "fresh.db")
				fresh, err := bboltstore.Open(freshPath, bboltstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				err = fresh.Import(t.Context(), func() (storage.Record, error) {
					if len(recs) == 0 {
						return storage.Record{}, io.EOF
					}
					r := recs[0]
					recs = recs[1:]
					return r, nil
				})
				if cerr := fresh.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(freshPath)
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			// bbolt is single-process: a second instance shares the handle.
			reopen: func(*testing.T) storage.Keys { return st },
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t, "the postgres case", "scripts/pg-test.sh run go test -run AtRest ./authserver/")
		schema := pgtest.Schema("mcpauth_keys_")
		open := func(t *testing.T) *pgstore.Store {
			st, err := pgstore.Open(t.Context(), pgstore.Config{DSN: dsn, Schema: schema, MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Errorf("drop schema: %v", err)
				return
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
				t.Errorf("drop schema: %v", err)
			}
		})
		raw := func(t *testing.T) []byte {
			conn, err := pgx.Connect(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			rows, err := conn.Query(t.Context(), `SELECT kid || ' ' || data::text FROM `+pgx.Identifier{schema, "mcpauth_signing_keys"}.Sanitize())
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				out.WriteString(s + "\n")
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if out.Len() == 0 {
				t.Fatal("no signing key rows")
			}
			return out.Bytes()
		}
		f(t, atRestBackend{
			store:  open(t),
			raw:    raw,
			live:   raw,
			reopen: func(t *testing.T) storage.Keys { return open(t) },
		})
	})
}

// logBuffer is a slog destination a test can read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func keySetWith(t *testing.T, store storage.Keys, clock *keysTestClock, enc *KeyEncryption, log *logBuffer) (*KeySet, error) {
	t.Helper()
	logger := quietLogger()
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, nil))
	}
	return NewKeySet(t.Context(), store, KeyConfig{Algorithm: AlgES256, PublishFor: time.Hour, Now: clock.Now, Logger: logger, Encryption: enc})
}

// secretsOf returns the forms in which the private keys would appear if
// stored in the clear: the private scalar of every loaded key (raw, hex,
// base64url as in a JWK) and the plaintext JWK of every stored key (list,
// opened with enc) as the stores encode []byte (base64).
func secretsOf(t *testing.T, ks *KeySet, list []storage.SigningKey, enc *KeyEncryption) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, sk := range list {
		plain, err := enc.openPrivateJWK(sk.ID, sk.PrivateJWK)
		if err != nil {
			t.Fatal(err)
		}
		out[sk.ID+" JWK (base64)"] = []byte(base64.StdEncoding.EncodeToString(plain))
	}
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	for kid, lk := range ks.published {
		priv, ok := lk.signer.(*ecdsa.PrivateKey)
		if !ok {
			t.Fatalf("key %s is %T", kid, lk.signer)
		}
		d, err := priv.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out[kid+" d (base64url)"] = []byte(base64.RawURLEncoding.EncodeToString(d))
		out[kid+" d (raw)"] = d
		out[kid+" d (hex)"] = []byte(hex.EncodeToString(d))
	}
	return out
}

func assertNoSecrets(t *testing.T, raw []byte, secrets map[string][]byte) {
	t.Helper()
	for name, s := range secrets {
		if bytes.Contains(raw, s) {
			t.Errorf("raw store holds %s", name)
		}
	}
}

func storedKeys(t *testing.T, store storage.Keys) []storage.SigningKey {
	t.Helper()
	list, err := store.ListSigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestKeySetEncryptsAtRest(t *testing.T) {
	atRestBackends(t, func(t *testing.T, b atRestBackend) {
		clock := newKeysTestClock()
		secret, _ := randomKEK(t, 32)
		enc := mustKeyEncryption(t, secret)
		ks, err := keySetWith(t, b.store, clock, enc, nil)
		if err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Minute)
		if err := ks.Rotate(t.Context()); err != nil { // a retired key too
			t.Fatal(err)
		}
		list := storedKeys(t, b.store)
		if len(list) != 2 {
			t.Fatalf("%d stored keys, want 2", len(list))
		}
		for _, sk := range list {
			if !strings.HasPrefix(string(sk.PrivateJWK), sealedPrefix+enc.ID()+":") {
				t.Fatalf("key %s stored unsealed: %.20q…", sk.ID, sk.PrivateJWK)
			}
		}
		raw := b.raw(t)
		secrets := secretsOf(t, ks, list, enc)
		if len(secrets) != 8 {
			t.Fatalf("%d secrets for 2 keys", len(secrets))
		}
		assertNoSecrets(t, raw, secrets)
		if !bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString([]byte(sealedPrefix)))[:16]) {
			t.Error("raw store does not show the sealed records (is the raw reader looking at the keys?)")
		}

		// Another instance with the same KEK uses the same keys.
		token, err := ks.Sign(t.Context(), map[string]any{"sub": "u"}, "at+jwt")
		if err != nil {
			t.Fatal(err)
		}
		other, err := keySetWith(t, b.reopen(t), clock, mustKeyEncryption(t, secret), nil)
		if err != nil {
			t.Fatal(err)
		}
		hdr, _, _, _ := jwsParts(t, token)
		pub, alg, err := other.PublicKey(t.Context(), hdr["kid"].(string))
		if err != nil || !verifyStdlib(t, token, pub, alg) {
			t.Fatalf("other instance cannot verify: %v", err)
		}
		if len(storedKeys(t, b.store)) != 2 {
			t.Fatal("second instance added a key")
		}
	})
}

// The detector of TestKeySetEncryptsAtRest finds plaintext keys: without a
// KEK the private scalar is in the raw store.
func TestKeySetPlaintextAtRestIsVisible(t *testing.T) {
	atRestBackends(t, func(t *testing.T, b atRestBackend) {
		ks, err := keySetWith(t, b.store, newKeysTestClock(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw := b.raw(t)
		list := storedKeys(t, b.store)
		found := 0
		for name, s := range secretsOf(t, ks, list, nil) {
			if bytes.Contains(raw, s) {
				found++
			}
			if strings.HasSuffix(name, "d (base64url)") && !bytes.Contains(list[0].PrivateJWK, s) {
				t.Fatalf("%s is not in the plaintext JWK", name)
			}
		}
		// The stores encode the JWK as base64: that form is what shows.
		if found != 1 {
			t.Fatalf("%d plaintext forms found in the raw store, want 1: the at-rest test would prove nothing", found)
		}
	})
}

func TestKeySetWrongKEKFailsAtStart(t *testing.T) {
	atRestBackends(t, func(t *testing.T, b atRestBackend) {
		clock := newKeysTestClock()
		secret, _ := randomKEK(t, 32)
		wrong, _ := randomKEK(t, 32)
		if _, err := keySetWith(t, b.store, clock, mustKeyEncryption(t, secret), nil); err != nil {
			t.Fatal(err)
		}
		before := storedKeys(t, b.store)
		for name, enc := range map[string]*KeyEncryption{
			"wrong KEK": mustKeyEncryption(t, wrong),
			"no KEK":    nil,
		} {
			t.Run(name, func(t *testing.T) {
				var log logBuffer
				clock.Add(time.Second)
				_, err := keySetWith(t, b.reopen(t), clock, enc, &log)
				if !errors.Is(err, ErrKeyDecrypt) {
					t.Fatalf("NewKeySet = %v, want ErrKeyDecrypt", err)
				}
				if !strings.Contains(err.Error(), "cannot decrypt signing keys: wrong key_encryption_key?") {
					t.Fatalf("error %q is not clear", err)
				}
				after := storedKeys(t, b.store)
				if len(after) != len(before) || after[0].ID != before[0].ID || !bytes.Equal(after[0].PrivateJWK, before[0].PrivateJWK) {
					t.Fatal("a failed start changed the stored keys (generated or rewrapped)")
				}
				for _, s := range [][]byte{secret, wrong} {
					if strings.Contains(log.String()+err.Error(), base64.StdEncoding.EncodeToString(s)) {
						t.Fatal("a KEK was logged")
					}
				}
			})
		}
	})
}

func TestKeySetEncryptsLegacyPlaintextAtStart(t *testing.T) {
	atRestBackends(t, func(t *testing.T, b atRestBackend) {
		clock := newKeysTestClock()
		legacy, err := keySetWith(t, b.store, clock, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Minute)
		if err := legacy.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		token, err := legacy.Sign(t.Context(), map[string]any{"sub": "u"}, "at+jwt")
		if err != nil {
			t.Fatal(err)
		}
		before := storedKeys(t, b.store)
		secrets := secretsOf(t, legacy, before, nil)

		secret, _ := randomKEK(t, 32)
		enc := mustKeyEncryption(t, secret)
		var log logBuffer
		ks, err := keySetWith(t, b.reopen(t), clock, enc, &log)
		if err != nil {
			t.Fatal(err)
		}
		after := storedKeys(t, b.store)
		if len(after) != len(before) {
			t.Fatalf("keys %d -> %d: start generated a key instead of keeping the legacy ones", len(before), len(after))
		}
		for i, sk := range after {
			if sk.ID != before[i].ID || !strings.HasPrefix(string(sk.PrivateJWK), sealedPrefix+enc.ID()+":") {
				t.Fatalf("key %s not re-encrypted at start", sk.ID)
			}
			if !sk.RetiredAt.Equal(before[i].RetiredAt) || !sk.PublishUntil.Equal(before[i].PublishUntil) {
				t.Fatalf("key %s: rewrap changed its retirement", sk.ID)
			}
		}
		assertNoSecrets(t, b.live(t), secrets)
		if !strings.Contains(log.String(), "count=2") || !strings.Contains(log.String(), "kek_id="+enc.ID()) {
			t.Fatalf("rewrap not logged: %s", log.String())
		}
		hdr, _, _, _ := jwsParts(t, token)
		pub, alg, err := ks.PublicKey(t.Context(), hdr["kid"].(string))
		if err != nil || !verifyStdlib(t, token, pub, alg) {
			t.Fatalf("a token signed before encryption does not verify after: %v", err)
		}
	})
}

func TestKeySetKEKRotation(t *testing.T) {
	atRestBackends(t, func(t *testing.T, b atRestBackend) {
		clock := newKeysTestClock()
		oldSecret, _ := randomKEK(t, 32)
		newSecret, _ := randomKEK(t, 32)
		oldEnc := mustKeyEncryption(t, oldSecret)

		// Instance 1 runs with the old KEK, with an active and a retired key.
		inst1, err := keySetWith(t, b.store, clock, oldEnc, nil)
		if err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Minute)
		if err := inst1.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		oldToken, err := inst1.Sign(t.Context(), map[string]any{"sub": "u"}, "at+jwt")
		if err != nil {
			t.Fatal(err)
		}

		// Instance 2 starts with the new KEK and the old as previous: every
		// key is re-encrypted with the new one.
		rotating := mustKeyEncryption(t, newSecret, oldSecret)
		inst2, err := keySetWith(t, b.reopen(t), clock, rotating, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, sk := range storedKeys(t, b.store) {
			if sealedKEKID(sk.PrivateJWK) != rotating.ID() {
				t.Fatalf("key %s still sealed with %q", sk.ID, sealedKEKID(sk.PrivateJWK))
			}
		}
		// Once rewrapped, the old KEK is no longer needed…
		if _, err := keySetWith(t, b.reopen(t), clock, mustKeyEncryption(t, newSecret), nil); err != nil {
			t.Fatalf("new KEK alone after rotation: %v", err)
		}
		// … and no longer enough.
		if _, err := keySetWith(t, b.reopen(t), clock, oldEnc, nil); !errors.Is(err, ErrKeyDecrypt) {
			t.Fatalf("old KEK alone after rotation: %v, want ErrKeyDecrypt", err)
		}

		// Instance 1 (not restarted yet) keeps the keys it has loaded when
		// instance 2 rotates the signing key: the retirement of its active
		// key, now sealed with a KEK it lacks, does not drop it.
		clock.Add(time.Minute)
		if err := inst2.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := inst1.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		hdr, _, _, _ := jwsParts(t, oldToken)
		pub, alg, err := inst1.PublicKey(t.Context(), hdr["kid"].(string))
		if err != nil || !verifyStdlib(t, oldToken, pub, alg) {
			t.Fatalf("instance 1 lost its key after the KEK rotation: %v", err)
		}
		pub, alg, err = inst2.PublicKey(t.Context(), hdr["kid"].(string))
		if err != nil || !verifyStdlib(t, oldToken, pub, alg) {
			t.Fatalf("instance 2 cannot verify the old token: %v", err)
		}
	})
}
