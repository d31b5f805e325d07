package pgstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
)

func TestTakeSharedBuckets(t *testing.T) {
	ctx := context.Background()
	schema := freshSchema(t)
	a, b := openIn(t, schema), openIn(t, schema)
	now := time.Unix(1_800_000_000, 0)
	iv := time.Second

	// A fresh bucket: end = now + n·interval.
	ends, err := a.TakeShared(ctx, now, []abuse.SharedTake{{Key: "dcr\x00192.0.2.1", N: 3, Interval: iv}, {Key: "dcr\x00", N: 1, Interval: 10 * iv}})
	if err != nil {
		t.Fatal(err)
	}
	if !ends[0].Equal(now.Add(3*iv)) || !ends[1].Equal(now.Add(10*iv)) {
		t.Fatalf("fresh ends %v, want now+3s and now+10s", ends)
	}
	// Another instance adds to the same debt; a passed end restarts at now.
	ends, err = b.TakeShared(ctx, now.Add(time.Second), []abuse.SharedTake{{Key: "dcr\x00192.0.2.1", N: 2, Interval: iv}})
	if err != nil || !ends[0].Equal(now.Add(5*iv)) {
		t.Fatalf("second take: %v, %v; want now+5s", ends, err)
	}
	later := now.Add(time.Hour)
	ends, err = b.TakeShared(ctx, later, []abuse.SharedTake{{Key: "dcr\x00192.0.2.1", N: 1, Interval: iv}})
	if err != nil || !ends[0].Equal(later.Add(iv)) {
		t.Fatalf("take after the end: %v, %v; want later+1s", ends, err)
	}
	// n = 0 reads without taking.
	ends, err = a.TakeShared(ctx, later, []abuse.SharedTake{{Key: "dcr\x00192.0.2.1", N: 0, Interval: iv}})
	if err != nil || !ends[0].Equal(later.Add(iv)) {
		t.Fatalf("read: %v, %v", ends, err)
	}
	if _, err := a.TakeShared(ctx, now, []abuse.SharedTake{{Key: "x", N: 1, Interval: iv}, {Key: "x", N: 1, Interval: iv}}); err == nil {
		t.Fatal("duplicate keys in one call accepted")
	}
	if _, err := a.TakeShared(ctx, now, []abuse.SharedTake{{Key: "x", N: -1, Interval: iv}}); err == nil {
		t.Fatal("negative take accepted")
	}

	// Concurrent takes from two instances all count.
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := []*Store{a, b}[i%2]
			takes := []abuse.SharedTake{{Key: "c\x00k1", N: 1, Interval: iv}, {Key: "c\x00k2", N: 1, Interval: iv}}
			if i%3 == 0 {
				takes[0], takes[1] = takes[1], takes[0]
			}
			if _, err := s.TakeShared(ctx, now, takes); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ends, err = a.TakeShared(ctx, now, []abuse.SharedTake{{Key: "c\x00k1", Interval: iv}, {Key: "c\x00k2", Interval: iv}})
	if err != nil || !ends[0].Equal(now.Add(40*iv)) || !ends[1].Equal(now.Add(40*iv)) {
		t.Fatalf("after 40 concurrent takes: %v, %v; want now+40s each", ends, err)
	}

	// No key in the clear; DeleteExpired removes buckets that are full again.
	var n int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM mcpauth_limits WHERE position('192.0.2.1'::bytea in hash) > 0`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("address stored in the clear: %d, %v", n, err)
	}
	if _, err := a.DeleteExpired(ctx, later.Add(time.Minute), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM mcpauth_limits`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d bucket rows left after DeleteExpired past every end (%v)", n, err)
	}
}

// TestSharedLimiterOnPostgres runs abuse.Limiter on two stores of one
// database: the burst holds across both within the sync slack; per-instance
// limiters admit twice the burst.
func TestSharedLimiterOnPostgres(t *testing.T) {
	schema := freshSchema(t)
	a, b := openIn(t, schema), openIn(t, schema)
	mk := func(s abuse.SharedBuckets) *abuse.Limiter {
		return abuse.NewLimiter(abuse.LimiterConfig{Rate: rate.Every(time.Hour), Burst: 10, Shared: s, SharedName: "dcr", SyncEvery: 20 * time.Millisecond})
	}
	count := func(la, lb *abuse.Limiter) int {
		ok := 0
		for i := range 60 {
			if []*abuse.Limiter{la, lb}[i%2].Allow("198.51.100.1").OK {
				ok++
			}
			time.Sleep(2 * time.Millisecond)
		}
		return ok
	}
	if got := count(mk(nil), mk(nil)); got != 20 {
		t.Fatalf("per-instance: %d admitted, want 20", got)
	}
	got := count(mk(a), mk(b))
	t.Logf("shared limiters admitted %d of 60 (burst 10)", got)
	if got < 10 || got > 12 {
		t.Fatalf("shared: %d admitted, want 10 to 12 (burst + slack)", got)
	}
}
