package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the client × check table, then every failure and
// warning with its fix.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "MCP URL   %s\nresource  %s\nissuer    %s\n\n", r.MCPURL, dash(r.Resource), dash(r.Issuer))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CLIENT\t%s\n", strings.ToUpper(strings.Join(Checks, "\t")))
	for _, c := range r.Clients {
		row := []string{c}
		for _, ch := range Checks {
			st := r.Get(c, ch).Status
			if st == "" {
				st = Skip
			}
			row = append(row, string(st))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// One line per distinct problem: clients that share it are listed once.
	type key struct{ check, detail, fix string }
	var order []key
	who := map[key][]string{}
	status := map[key]Status{}
	for _, x := range r.Results {
		if x.Status != Fail && x.Status != Warn {
			continue
		}
		k := key{x.Check, x.Detail, x.Fix}
		if _, seen := who[k]; !seen {
			order = append(order, k)
			status[k] = x.Status
		}
		who[k] = append(who[k], x.Client)
	}
	if len(order) > 0 {
		fmt.Fprintln(w)
	}
	for _, k := range order {
		fmt.Fprintf(w, "%s %s (%s): %s\n", status[k], k.check, strings.Join(who[k], ", "), k.detail)
		if k.fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", k.fix)
		}
	}
	fmt.Fprintf(w, "\n%d failed, %d warnings\n", r.Failed, r.Warnings)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
