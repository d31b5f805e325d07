package opscli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/internal/doctor"
)

// newDoctorCommand is `mcpauth doctor <mcp-url>`: the CLI face of
// internal/doctor (flags in, table or JSON out, exit status 1 on failures).
func newDoctorCommand(o *cliOpts) *cobra.Command {
	var caFiles []string
	var overrides []string
	var noRegister, allowLoopback bool
	cmd := &cobra.Command{
		Use:   "doctor <mcp-url>",
		Short: "Replay the discovery and sign-in preflight of Claude, ChatGPT, VS Code, Cursor and the Inspector against a running site",
		Long: `Replays, against a running site, what each major MCP client does before a
user can sign in: the unauthenticated 401 and its challenge, every well-known
path the client asks for, the PRM/AS metadata consistency rules, the client's
registration lane (CIMD or DCR) and its registration shape, the resource it
sends, CORS preflights for browser clients, and iss. Prints a table client ×
check and the fix for each failure; exits 1 when a check fails.

It needs no credentials. It registers one DCR client per client profile that
uses DCR (the site's stale-client cleanup removes them); --no-register skips
that.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			var pool *x509.CertPool
			for _, caFile := range caFiles {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("reading --ca-file: %w", err)
				}
				if pool == nil {
					if pool, _ = x509.SystemCertPool(); pool == nil {
						pool = x509.NewCertPool()
					}
				}
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
				}
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			if pool != nil {
				tr.TLSClientConfig = &tls.Config{RootCAs: pool}
			}
			profiles := doctor.Profiles()
			for _, ov := range overrides {
				name, u, ok := strings.Cut(ov, "=")
				found := false
				for i := range profiles {
					if ok && strings.EqualFold(profiles[i].Name, name) && profiles[i].CIMD != "" {
						profiles[i].CIMD, found = u, true
					}
				}
				if !found {
					return fmt.Errorf("--client-metadata %q: want <client>=<url> for a client with a metadata document (Claude, Claude Code, ChatGPT, VS Code)", ov)
				}
			}
			fetcher, err := cimd.NewFetcher(cimd.FetcherConfig{ExtraCAs: pool, AllowLoopback: allowLoopback})
			if err != nil {
				return err
			}
			defer fetcher.Close()
			rep, err := doctor.Run(c.Context(), doctor.Config{
				MCPURL: a[0], HTTP: &http.Client{Transport: tr, Timeout: 20 * time.Second},
				Profiles: profiles, Register: !noRegister, Fetcher: fetcher,
			})
			if err != nil {
				return err
			}
			if o.json {
				err = rep.WriteJSON(o.env.Stdout)
			} else {
				err = rep.WriteText(o.env.Stdout)
			}
			if err != nil {
				return err
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d checks failed", rep.Failed)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&caFiles, "ca-file", nil, "Also trust this PEM CA for the site and the metadata documents (a private PKI, Caddy's local CA; repeatable)")
	cmd.Flags().StringArrayVar(&overrides, "client-metadata", nil, "Replace a client's metadata document URL: <client>=<url> (repeatable)")
	cmd.Flags().BoolVar(&noRegister, "no-register", false, "Do not make the DCR registrations the clients would make")
	cmd.Flags().BoolVar(&allowLoopback, "insecure-allow-loopback", false, "Let the local metadata-document fetch reach loopback addresses (development only)")
	return cmd
}
