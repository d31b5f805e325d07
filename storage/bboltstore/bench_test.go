package bboltstore

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// benchGoroutines is how many goroutines the parallel benchmarks run.
const benchGoroutines = 16

// setParallelism makes RunParallel use about benchGoroutines goroutines
// (it starts parallelism x GOMAXPROCS of them).
func setParallelism(b *testing.B) {
	p := max(1, (benchGoroutines+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0))
	b.SetParallelism(p)
}

// openBench opens a durable store (fsync on every commit, as in
// production) in a temporary directory.
func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{NoSync: os.Getenv("BENCH_NOSYNC") != ""})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkRawCommit is the floor: one tiny Put per db.Update, from 16
// goroutines. Each op is one fsync'd bbolt commit.
func BenchmarkRawCommit(b *testing.B) {
	s := openBench(b)
	var n atomic.Uint64
	setParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], n.Add(1))
			if err := s.db.Update(func(tx *bolt.Tx) error {
				return bucket(tx, bktTickets).Put(k[:], []byte("x"))
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRedeemCode measures a full code exchange as the token endpoint
// does it: RedeemCode plus the grant (with its refresh token and indexes)
// in one transaction, from 16 goroutines, each on its own code. The codes
// are saved beforehand, outside the timer.
func BenchmarkRedeemCode(b *testing.B) {
	s := openBench(b)
	ctx := b.Context()
	now := time.Now()
	hash := func(prefix string, i int) []byte {
		h := sha256.Sum256(fmt.Appendf(nil, "%s-%d", prefix, i))
		return h[:]
	}
	// Save b.N codes in chunks (the setup is not what is measured).
	for start := 0; start < b.N; start += 1000 {
		if err := s.db.Update(func(tx *bolt.Tx) error {
			for i := start; i < min(start+1000, b.N); i++ {
				c := storage.AuthCode{
					Hash: hash("code", i), ClientID: "client-1", RedirectURI: "https://app.example/cb",
					CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
					Subject: "user-1", Scopes: []string{"mcp:read", "offline_access"}, Resource: "https://mcp.example/mcp",
					AuthTime: now, GrantID: fmt.Sprint("grant-", i), CreatedAt: now, ExpiresAt: now.Add(time.Hour),
				}
				if err := putJSON(bucket(tx, bktCodes), c.Hash, c); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	setParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1) - 1)
			_, err := s.RedeemCode(ctx, hash("code", i), now, func(c storage.AuthCode) (*storage.Grant, error) {
				return &storage.Grant{
					ID: c.GrantID, ClientID: c.ClientID, Subject: c.Subject, Scopes: c.Scopes,
					Resource: c.Resource, AuthTime: c.AuthTime, RefreshHash: hash("refresh", i),
					CreatedAt: now, RefreshExpiresAt: now.Add(24 * time.Hour), ExpiresAt: now.Add(30 * 24 * time.Hour),
				}, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendAudit shows db.Batch at work: concurrent appends share
// commits, so an append costs less than a commit.
func BenchmarkAppendAudit(b *testing.B) {
	s := openBench(b)
	ctx := b.Context()
	setParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.AppendAudit(ctx, storage.AuditEvent{Type: "token.issued", Subject: "user-1", ClientID: "client-1"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
