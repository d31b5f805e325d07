package pgstore

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// benchGoroutines is how many goroutines the parallel benchmarks run (as in
// bboltstore), each with a pooled connection of its own.
const benchGoroutines = 16

// BenchmarkRedeemCode measures a full code exchange as the token endpoint
// does it: RedeemCode plus the grant with its refresh token, in one
// transaction, from 16 goroutines, each on its own code. The codes are saved
// beforehand, outside the timer. Reported as exchanges/s beside ns/op.
//
// The figures depend on the server's durability settings: the cluster of
// scripts/pg-test.sh runs with fsync off unless started with
// MCPAUTH_TEST_PG_DURABLE=1, which compares fairly with bbolt's fsync'd
// commits:
//
//	MCPAUTH_TEST_PG_DURABLE=1 scripts/pg-test.sh run go test -run '^$' -bench BenchmarkRedeemCode ./storage/pgstore/
func BenchmarkRedeemCode(b *testing.B) {
	schema := freshSchema(b)
	ctx := context.Background()
	s, err := Open(ctx, Config{DSN: testDSN(b), Schema: schema, MaxConns: benchGoroutines, MinConns: benchGoroutines})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })

	codes := make([]storage.AuthCode, b.N)
	for start := 0; start < b.N; start += 1000 {
		batch := &pgx.Batch{}
		for i := start; i < min(start+1000, b.N); i++ {
			c := testCode(fmt.Sprintf("bench-%d", i))
			c.ExpiresAt = t0.Add(time.Hour)
			codes[i] = c
			data, err := encode("bench", c)
			if err != nil {
				b.Fatal(err)
			}
			batch.Queue(`INSERT INTO mcpauth_codes (hash, client_id, grant_id, expires_at, data) VALUES ($1, $2, $3, $4, $5)`,
				c.Hash, c.ClientID, c.GrantID, c.ExpiresAt, data)
		}
		if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	now := t0.Add(time.Second)
	b.SetParallelism(max(1, (benchGoroutines+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := codes[next.Add(1)-1]
			_, err := s.RedeemCode(ctx, c.Hash, now, func(c storage.AuthCode) (*storage.Grant, error) {
				return grantFor(c, "refresh-"+c.GrantID), nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
}
