package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestCIMDUnderJunkFlood: a flood of junk client_id paths under the real
// client's (trusted) host costs a handful of fetches, answers 503 with
// Retry-After once throttled (never a redirect), and does not stop the real
// CIMD client from resolving again: its refetch (the cache lifetime is one
// second here) has a budget the junk cannot touch.
func TestCIMDUnderJunkFlood(t *testing.T) {
	doc := startCIMDServer(t)
	s := startStack(t, stackOpts{extraApp: fmt.Sprintf("cimd {\n\t\t\tpolicy trusted\n\t\t\ttrusted_hosts localhost\n\t\t\tinsecure_allow_loopback\n\t\t\tca_bundle %s\n\t\t\tcache_min 1s\n\t\t\tcache_max 1s\n\t\t}", doc.CAFile)})
	useCIMD := func(c *auth.AuthorizationCodeHandlerConfig) {
		c.ClientIDMetadataDocumentConfig = &auth.ClientIDMetadataDocumentConfig{URL: doc.URL}
	}
	cs, _ := goSDKSession(t, s, useCIMD, nil)
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil {
		t.Fatalf("whoami before the flood: %v", err)
	}
	cs.Close()

	u, _ := url.Parse(doc.URL)
	noRedirect := *s.Client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var sent, throttled, redirected atomic.Int64
	var badRetry atomic.Value
	junk := func(i int) {
		q := url.Values{"client_id": {fmt.Sprintf("https://%s/junk/%d", u.Host, i)}, "redirect_uri": {cliRedirect}, "response_type": {"code"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}, "state": {"s"}}
		resp, err := noRedirect.Get(s.Issuer + "/authorize?" + q.Encode())
		if err != nil {
			return
		}
		resp.Body.Close()
		sent.Add(1)
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable:
			throttled.Add(1)
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
				badRetry.Store(resp.Header.Get("Retry-After"))
			}
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			redirected.Add(1)
		}
	}
	for i := range 60 {
		junk(i)
	}
	time.Sleep(1500 * time.Millisecond) // the real client's cache entry expires

	// Keep flooding, from four goroutines, while the real client signs in
	// again: whenever the host's bucket refills, junk is there first.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 { // bounded
				select {
				case <-stop:
					return
				default:
				}
				junk(1000 + g*1000 + i)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	before := doc.fetches.Load()
	cs2, _ := goSDKSession(t, s, useCIMD, nil)
	_, err := cs2.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("whoami under the flood: %v", err)
	}
	if doc.fetches.Load() == before {
		t.Fatal("the real client's document was not refetched under the flood")
	}
	if redirected.Load() != 0 {
		t.Fatalf("%d junk requests were redirected", redirected.Load())
	}
	if v := badRetry.Load(); v != nil {
		t.Fatalf("503 with Retry-After %q", v)
	}
	// One requester (127.0.0.1): a burst of 5, then one fetch per 5 s
	// (the flood lasts well under half a minute).
	if n := doc.others.Load(); n > 12 || throttled.Load() < sent.Load()-12 {
		t.Fatalf("%d junk requests cost %d fetches (%d throttled)", sent.Load(), n, throttled.Load())
	}
	t.Logf("%d junk requests, %d junk fetches, %d answered 503", sent.Load(), doc.others.Load(), throttled.Load())
}
