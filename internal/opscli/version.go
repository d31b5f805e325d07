package opscli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mcpauth/caddy-mcpauth/internal/version"
)

func newVersionCommand(o *cliOpts) *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Print the plugin's version and VCS revision (no server needed)", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return writeVersion(o.env.Stdout, o.json, o.cfg.Version()) }}
}

func writeVersion(w io.Writer, asJSON bool, v version.Info) error {
	if asJSON {
		return json.NewEncoder(w).Encode(v)
	}
	_, err := fmt.Fprintln(w, v.String())
	return err
}
