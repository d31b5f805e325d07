package pgstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// BenchmarkRedeemCode measures code exchanges: the token endpoint's one
// write transaction (lock the code, mark it used, create the grant with its
// refresh token), from parallel goroutines on one pool. The codes are saved
// before the timer starts. Reported as exchanges/s beside ns/op.
func BenchmarkRedeemCode(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	codes := make([]storage.AuthCode, b.N)
	for i := range codes {
		c := testCode(fmt.Sprintf("bench-%d", i))
		c.ExpiresAt = t0.Add(time.Hour)
		if err := s.SaveCode(ctx, c); err != nil {
			b.Fatal(err)
		}
		codes[i] = c
	}
	var next atomic.Int64
	now := t0.Add(time.Second)
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
