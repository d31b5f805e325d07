package opscli

import (
	"encoding/json"
	"fmt"
	"github.com/mcpauth/caddy-mcpauth/internal/adminwire"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func cliTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func cliTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func cliDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cliYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printClients(w io.Writer, body []byte) error {
	var cs []adminwire.ClientView
	if err := json.Unmarshal(body, &cs); err != nil {
		return fmt.Errorf("mcpauth: decoding clients: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "ID\tKIND\tNAME\tDISABLED\tCREATED\tLAST USED")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, cliDash(c.Name), cliYesNo(c.Disabled), cliTime(c.CreatedAt), cliTime(c.LastUsedAt))
	}
	return tw.Flush()
}

func printClient(w io.Writer, body []byte) error {
	var c adminwire.ClientView
	if err := json.Unmarshal(body, &c); err != nil {
		return fmt.Errorf("mcpauth: decoding client: %w", err)
	}
	tw := cliTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", c.ID)
	row("Kind", c.Kind)
	row("Name", cliDash(c.Name))
	row("Disabled", cliYesNo(c.Disabled))
	row("Redirect URIs", cliDash(strings.Join(c.RedirectURIs, " ")))
	row("Scopes", cliDash(strings.Join(c.Scopes, " ")))
	row("Auth method", cliDash(c.TokenEndpointAuthMethod))
	row("Skip consent", cliYesNo(c.SkipConsent))
	if c.RegisteredFrom != "" {
		row("Registered from", c.RegisteredFrom)
	}
	row("Created", cliTime(c.CreatedAt))
	row("Last used", cliTime(c.LastUsedAt))
	if c.ActiveGrants != nil {
		row("Active grants", strconv.Itoa(*c.ActiveGrants))
	}
	return tw.Flush()
}

func printUsers(w io.Writer, body []byte) error {
	var us []adminwire.UserView
	if err := json.Unmarshal(body, &us); err != nil {
		return fmt.Errorf("mcpauth: decoding users: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tDISABLED\tPASSWORD\tCREATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Email, cliDash(u.Name), cliYesNo(u.Disabled), cliYesNo(u.HasPassword), cliTime(u.CreatedAt))
	}
	return tw.Flush()
}

func printUser(w io.Writer, body []byte) error {
	var u adminwire.UserView
	if err := json.Unmarshal(body, &u); err != nil {
		return fmt.Errorf("mcpauth: decoding user: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME")
	fmt.Fprintf(tw, "%s\t%s\t%s\n", u.ID, u.Email, cliDash(u.Name))
	return tw.Flush()
}

// printResult prints an action's counters as KEY VALUE lines.
func printResult(w io.Writer, body []byte) error {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("mcpauth: decoding the answer: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tw := cliTable(w)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%v\n", k, m[k])
	}
	return tw.Flush()
}

func printAudit(w io.Writer, body []byte) error {
	var evs []struct {
		Time     time.Time         `json:"time"`
		Type     string            `json:"type"`
		Outcome  string            `json:"outcome"`
		Subject  string            `json:"sub"`
		ClientID string            `json:"client_id"`
		IP       string            `json:"ip"`
		Detail   map[string]string `json:"detail"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		return fmt.Errorf("mcpauth: decoding audit events: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "TIME\tTYPE\tOUTCOME\tSUBJECT\tCLIENT\tIP\tDETAIL")
	// Oldest first, like tail.
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		keys := make([]string, 0, len(e.Detail))
		for k := range e.Detail {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var d []string
		for _, k := range keys {
			d = append(d, k+"="+e.Detail[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cliTime(e.Time), e.Type, cliDash(e.Outcome), cliDash(e.Subject), cliDash(e.ClientID), cliDash(e.IP), cliDash(strings.Join(d, " ")))
	}
	return tw.Flush()
}

func printKeys(w io.Writer, body []byte) error {
	var ks []adminwire.KeyView
	if err := json.Unmarshal(body, &ks); err != nil {
		return fmt.Errorf("mcpauth: decoding keys: %w", err)
	}
	tw := cliTable(w)
	fmt.Fprintln(tw, "KID\tALG\tACTIVE\tCREATED\tACTIVATES\tRETIRED\tPUBLISHED UNTIL")
	for _, k := range ks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, cliYesNo(k.Active), cliTime(k.CreatedAt), cliTime(k.ActivatesAt), cliTime(k.RetiredAt), cliTime(k.PublishUntil))
	}
	return tw.Flush()
}
