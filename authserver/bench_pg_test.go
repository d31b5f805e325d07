package authserver

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mcpauth/caddy-mcpauth/internal/pgtest"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/pgstore"
)

// BenchmarkCodeExchangeBackends runs BenchmarkCodeExchange's workload (full
// POST /token code exchanges over HTTP at 16 concurrent clients, codes
// minted beforehand) on bbolt (fsync on) and on PostgreSQL in the same run,
// so the two figures come from the same machine and moment. The PostgreSQL
// case needs MCPAUTH_TEST_POSTGRES_DSN (fails when CI=true and it is unset,
// skipped with a message otherwise); start a durable server for figures
// worth reporting:
//
//	MCPAUTH_TEST_PG_DURABLE=1 scripts/pg-test.sh run \
//	  go test -run '^$' -bench CodeExchangeBackends -benchtime 3000x ./authserver/
func BenchmarkCodeExchangeBackends(b *testing.B) {
	b.Run("bbolt", func(b *testing.B) {
		h := newHarnessSync(b, true)
		benchExchanges(b, h.ts.URL, h.store, h.clock.Now())
	})
	b.Run("postgres", func(b *testing.B) {
		st := openBenchPG(b)
		url, now := newPGBenchServer(b, st)
		benchExchanges(b, url, st, now)
	})
}

// openBenchPG opens a store on a fresh schema, dropped at the end.
func openBenchPG(b *testing.B) *pgstore.Store {
	b.Helper()
	dsn := pgtest.DSN(b, "the postgres case",
		"MCPAUTH_TEST_PG_DURABLE=1 scripts/pg-test.sh run go test -run '^$' -bench CodeExchangeBackends ./authserver/")
	schema := pgtest.Schema("mcpauth_bench_")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := pgstore.Open(ctx, pgstore.Config{DSN: dsn, Schema: schema, MaxConns: 2 * benchClients})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = st.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			b.Errorf("drop schema: %v", err)
		}
	})
	return st
}

// newPGBenchServer serves an authorization server on st configured like
// newHarnessSync's.
func newPGBenchServer(b *testing.B, st *pgstore.Store) (string, time.Time) {
	b.Helper()
	clock := &testClock{t: time.Now().Truncate(time.Second)}
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	srv, err := New(context.Background(), Config{
		Issuer:        issuer,
		Store:         st,
		Browser:       &testBrowser{authTime: clock.Now()},
		Scopes:        []string{"read", "write"},
		DefaultScopes: []string{"read"},
		Resources: ResourcePolicy{Enabled: true, ClientAudienceFallback: true, EnforceOnTokenExchange: true, KeepBindingOnRefresh: true,
			Known: []string{testResource}},
		Clients:        testClients(b),
		ClientResolver: &testResolver{clients: map[string]storage.Client{}},
		Now:            clock.Now,
	})
	if err != nil {
		b.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	b.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return ts.URL, clock.Now()
}

// benchExchanges mints b.N codes in store, then redeems them at url/token
// with benchClients concurrent clients and reports exchanges/s, p50, p99.
func benchExchanges(b *testing.B, url string, store storage.Codes, now time.Time) {
	b.Helper()
	ctx := context.Background()
	bodies := make([]string, b.N)
	for i := range bodies {
		code := randomBenchToken(b)
		if err := store.SaveCode(ctx, storage.AuthCode{Hash: hashToken(code), ClientID: "app", RedirectURI: appRedirect,
			CodeChallenge: s256(testVerifier), CodeChallengeMethod: "S256", Subject: "alice", Scopes: []string{"read"},
			Resource: testResource, GrantID: randomBenchToken(b)[:22], CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		bodies[i] = (&harness{}).exchangeForm("app", code, appRedirect, testVerifier).Encode()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * benchClients, MaxConnsPerHost: 2 * benchClients}}
	defer client.CloseIdleConnections()
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  []time.Duration
	)
	b.SetParallelism(benchParallelism())
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			body := bodies[next.Add(1)-1]
			t0 := time.Now()
			resp, err := client.Post(url+"/token", "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
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
	reportLatencies(b, lat, elapsed, "exchanges/s")
}
