package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// otherDuration stands for a duration type other than caddy.Duration: the
// duration setters are generic over ~int64.
type otherDuration int64

// setters is one field per setter of cfparse.go.
type setters struct {
	S      string
	L      []string
	B      bool
	PB     *bool
	N      int
	N32    int32
	D      caddy.Duration
	DP     *caddy.Duration
	OD     otherDuration
	Choice string
	M      map[string]string
	Sub    *setters
}

func (t *setters) table() opts {
	return opts{
		"str":      str(&t.S),
		"strs":     strs(&t.L),
		"any":      anyStrs(&t.L),
		"present":  present(&t.B),
		"onoff":    onOff(&t.B),
		"onoffptr": onOffPtr(&t.PB),
		"int":      intArg(&t.N, 1, 10),
		"pos":      intArg(&t.N, 1, unbounded),
		"n32":      intArg(&t.N32, 0, unbounded),
		"dur":      dur(&t.D),
		"durptr":   durPtr(&t.DP),
		"other":    dur(&t.OD),
		"off":      durOrOff(&t.D),
		"posdur":   posDur(&t.D, time.Hour),
		"choice":   oneOf(&t.Choice, "a", "b", "c"),
		"pair": nargs(2, 2, "%s <key> <value>", func(d *caddyfile.Dispenser, args []string) error {
			if !putNew(&t.M, args[0], args[1]) {
				return d.Errf("pair %s is configured twice", args[0])
			}
			return nil
		}),
		"sub": fresh(&t.Sub, func(s *setters, d *caddyfile.Dispenser) error { return block("sub option", s.table())(d) }),
	}
}

func TestCaddyfileSetters(t *testing.T) {
	yes, no := true, false
	hour, zero := caddy.Duration(time.Hour), caddy.Duration(0)
	cases := []struct {
		name, body string
		want       setters
		err        string // substring of the error; "" for none
		line       int    // the line the error names
	}{
		{name: "str", body: "str a", want: setters{S: "a"}},
		{name: "str last wins", body: "str a\nstr b", want: setters{S: "b"}},
		{name: "str none", body: "str", err: "wrong argument count or unexpected line ending after 'str'", line: 2},
		{name: "str two", body: "str a b", err: "wrong argument count or unexpected line ending after 'a'", line: 2},
		{name: "str block", body: "str {\n}", err: "wrong argument count or unexpected line ending after 'str'", line: 2},
		{name: "strs appends", body: "strs a b\nstrs c", want: setters{L: []string{"a", "b", "c"}}},
		{name: "strs none", body: "strs", err: "wrong argument count", line: 2},
		{name: "any none", body: "any", want: setters{}},
		{name: "any appends", body: "any a\nany b c", want: setters{L: []string{"a", "b", "c"}}},
		{name: "present", body: "present", want: setters{B: true}},
		{name: "present arg", body: "present yes no", err: "wrong argument count or unexpected line ending after 'yes'", line: 2},
		{name: "onoff on", body: "onoff on", want: setters{B: true}},
		{name: "onoff off", body: "onoff on\nonoff off", want: setters{}},
		{name: "onoff only on/off", body: "onoff yes", err: `onoff: want on or off, not "yes"`, line: 2},
		{name: "onoff none", body: "onoff", err: "wrong argument count", line: 2},
		{name: "onoffptr yes", body: "onoffptr yes", want: setters{PB: &yes}},
		{name: "onoffptr false", body: "onoffptr false", want: setters{PB: &no}},
		{name: "onoffptr bad", body: "\nonoffptr maybe", err: `onoffptr: want on or off, not "maybe"`, line: 3},
		{name: "int", body: "int 10", want: setters{N: 10}},
		{name: "int range", body: "int 11", err: "int 11 must be between 1 and 10", line: 2},
		{name: "int negative", body: "int -1", err: `int: "-1" is not a whole number`, line: 2},
		{name: "int word", body: "int ten", err: `int: "ten" is not a whole number`, line: 2},
		{name: "pos zero", body: "pos 0", err: "pos 0 is not a positive number", line: 2},
		{name: "pos large", body: "pos 123456789", want: setters{N: 123456789}},
		{name: "int32 wraps as a conversion does", body: "n32 4294967297", want: setters{N32: 1}},
		{name: "dur", body: "dur 1h", want: setters{D: hour}},
		{name: "dur days", body: "dur 1d", want: setters{D: caddy.Duration(24 * time.Hour)}},
		{name: "dur bad", body: "dur soon", err: "dur: ", line: 2},
		{name: "dur two", body: "dur 1h 2h", err: "wrong argument count", line: 2},
		{name: "durptr zero is set", body: "durptr 0", want: setters{DP: &zero}},
		{name: "dur other type", body: "other 90s", want: setters{OD: otherDuration(90 * time.Second)}},
		{name: "off", body: "off off", want: setters{D: -1}},
		{name: "off duration", body: "off 1h", want: setters{D: hour}},
		{name: "off zero", body: "off 0s", err: `off "0s" is not a positive duration or off`, line: 2},
		{name: "posdur", body: "posdur 1h", want: setters{D: hour}},
		{name: "posdur zero", body: "posdur 0s", err: "posdur must be positive", line: 2},
		{name: "posdur too long", body: "posdur 61m", err: "posdur 1h1m0s is longer than 1h0m0s", line: 2},
		{name: "choice", body: "choice b", want: setters{Choice: "b"}},
		{name: "choice bad", body: "choice d", err: `choice: "d": want a, b or c`, line: 2},
		{name: "pair", body: "pair a 1\npair b 2", want: setters{M: map[string]string{"a": "1", "b": "2"}}},
		{name: "pair twice", body: "pair a 1\npair a 2", err: "pair a is configured twice", line: 3},
		{name: "pair usage", body: "pair a", err: "pair <key> <value>", line: 2},
		{name: "sub", body: "sub {\n\tstr x\n\tpresent\n}", want: setters{Sub: &setters{S: "x", B: true}}},
		{name: "sub replaces", body: "sub {\n\tstr x\n}\nsub {\n\tpresent\n}", want: setters{Sub: &setters{B: true}}},
		{name: "sub arg", body: "sub x {\n}", err: "wrong argument count or unexpected line ending after 'x'", line: 2},
		{name: "sub unknown", body: "sub {\n\tstr x\n\tcolour red\n}", err: `unknown sub option "colour"`, line: 4},
		{name: "unknown", body: "str a\nnonsense 1", err: `unknown test option "nonsense"`, line: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got setters
			d := caddyfile.NewTestDispenser("test {\n" + c.body + "\n}\n")
			d.Next()
			err := block("test option", got.table())(d)
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("got %+v, want %+v", got, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want one containing %q", err, c.err)
			}
			if at := "Testfile:" + strconv.Itoa(c.line); !strings.HasSuffix(err.Error(), at) {
				t.Errorf("error %q does not end with %s", err, at)
			}
		})
	}
}

// The block's own arguments are refused before its subdirectives are read.
func TestCaddyfileBlockArgs(t *testing.T) {
	var s setters
	d := caddyfile.NewTestDispenser("test extra {\n\tstr a\n}\n")
	d.Next()
	if err := block("test option", s.table())(d); err == nil || !strings.Contains(err.Error(), "after 'extra'") {
		t.Fatalf("error %v, want the argument refused", err)
	}
	if s.S != "" {
		t.Errorf("the block was read: %+v", s)
	}
}

// FuzzCaddyfileAdapt adapts arbitrary mcp_auth and mcp_protect blocks: the
// adapter refuses or accepts them, and never panics.
func FuzzCaddyfileAdapt(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.caddyfile")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, b := range innerBlocks(string(src), "mcp_auth {", "mcp_protect") {
			f.Add(b)
		}
	}
	for _, b := range []string{"", "}", "{", "client {\n}", "cimd {\n client {\n }\n}", "storage", "login {\n smtp {\n  port 0\n }\n}",
		"tool_limit x 1/", "identity_headers {\n {\n}", "dpop {\n algorithms\n}", "max_header_bytes -1", "\"", "`x`", "import x"} {
		f.Add(b)
	}
	global := "{\n\tmcp_auth {\n\t\tissuer https://auth.example.com\n\t\tscopes a b\n%s\n\t}\n}\nauth.example.com {\n\tmcp_auth_server\n}\n"
	f.Fuzz(func(t *testing.T, body string) {
		_, _ = adapt(t, strings.Replace(global, "%s", body, 1))
		_, _ = adapt(t, strings.Replace(global, "%s", "", 1)+"mcp.example.com {\n\tmcp_protect /mcp* {\n"+body+"\n\t}\n}\n")
	})
}

// innerBlocks returns the bodies of the blocks whose first line contains one
// of starts.
func innerBlocks(src string, starts ...string) []string {
	var out []string
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		for _, s := range starts {
			if !strings.Contains(l, s) || !strings.HasSuffix(strings.TrimSpace(l), "{") {
				continue
			}
			depth := 1
			for j := i + 1; j < len(lines); j++ {
				depth += strings.Count(lines[j], "{") - strings.Count(lines[j], "}")
				if depth == 0 {
					out = append(out, strings.Join(lines[i+1:j], "\n"))
					break
				}
			}
		}
	}
	return out
}

// A repeated subdirective keeps today's meaning: a value's last use wins,
// lists append, login merges, and cimd, dcr, dpop and resource_indicators
// blocks replace the earlier one.
func TestCaddyfileRepeats(t *testing.T) {
	out, err := adapt(t, `{
	mcp_auth {
		issuer https://old.example.com
		issuer https://auth.example.com
		scopes a
		scopes b c
		login {
			product_name Old
		}
		login {
			password off
		}
		cimd {
			policy any
		}
		cimd {
			max_bytes 10
		}
		resource_indicators {
			enabled on
		}
		resource_indicators {
			keep_binding_on_refresh off
		}
		client one {
			redirect_uri https://one.example.com/cb
		}
		client two {
			redirect_uri https://two.example.com/cb
		}
	}
}
`)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			App App `json:"mcp_auth"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps.App
	if a.Issuer != "https://auth.example.com" || !reflect.DeepEqual(a.Scopes, []string{"a", "b", "c"}) {
		t.Errorf("issuer %q, scopes %v", a.Issuer, a.Scopes)
	}
	if a.Login.ProductName != "Old" || a.Login.Password == nil || *a.Login.Password {
		t.Errorf("login blocks did not merge: %+v", a.Login)
	}
	if a.CIMD == nil || a.CIMD.Policy != "" || a.CIMD.MaxBytes != 10 {
		t.Errorf("the second cimd block did not replace the first: %+v", a.CIMD)
	}
	if ri := a.ResourceIndicators; ri == nil || ri.Enabled != nil || ri.KeepBindingOnRefresh == nil || *ri.KeepBindingOnRefresh {
		t.Errorf("the second resource_indicators block did not replace the first: %+v", ri)
	}
	if len(a.Clients) != 2 || a.Clients[0].ID != "one" || a.Clients[1].ID != "two" || a.Clients[1].Source != "Caddyfile:28" {
		t.Errorf("clients %+v", a.Clients)
	}
}
