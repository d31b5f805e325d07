package authserver

import (
	"crypto/rand"
	"encoding/base64"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// benchClients is the number of concurrent clients of the benchmarks.
const benchClients = 16

func benchParallelism() int {
	procs := runtime.GOMAXPROCS(0)
	return (benchClients + procs - 1) / procs
}

// reportLatencies adds p50/p99 (ms) and the rate per second.
func reportLatencies(b *testing.B, lat []time.Duration, elapsed time.Duration, unit string) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(float64(len(lat)-1) * p)
		return float64(lat[i].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), unit)
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkCodeExchange measures full authorization-code exchanges
// (POST /token over HTTP: parse, client lookup, one bbolt write transaction
// redeeming the code and creating the grant with fsync, ES256 signing) at 16
// concurrent clients against a real server. Codes are minted beforehand.
//
//	go test -run '^$' -bench 'CodeExchange|BboltCommit' -benchtime 3000x ./authserver/
func BenchmarkCodeExchange(b *testing.B) {
	h := newHarnessSync(b, true)
	benchExchanges(b, h.ts.URL, h.store, h.clock.Now())
}

// BenchmarkBboltCommit is the raw bbolt single-writer commit rate on the same
// machine and file system (one small put per write transaction, fsync on, 16
// concurrent writers): the ceiling BenchmarkCodeExchange is compared with.
func BenchmarkBboltCommit(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err }); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 400)
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(benchParallelism())
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		key := make([]byte, 32)
		for pb.Next() {
			_, _ = rand.Read(key)
			t0 := time.Now()
			if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(key, value) }); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatencies(b, lat, elapsed, "commits/s")
}

func randomBenchToken(b *testing.B) string {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(buf)
}
