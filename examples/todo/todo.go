package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Limits that keep one client from exhausting the process: the store lives in memory.
const (
	maxTitleRunes   = 200
	maxTodosPerList = 1000
	maxLists        = 10000
	maxSlowCount    = 100
	maxSlowDelay    = 5 * time.Second
	defaultDelay    = 50 * time.Millisecond
	anonymousList   = "anonymous"
	serverName      = "todo"
	serverVersion   = "0.1.0"
	mcpPath         = "/mcp"
	healthPath      = "/healthz"
	defaultSubject  = "X-Mcp-Subject"
	defaultIdPrefix = "X-Mcp-"
	// revisionStateless is the first MCP revision without sessions
	// (SEP-2567, SEP-2575): requests carrying it (MCP-Protocol-Version
	// header at or after it) are served statelessly.
	revisionStateless = "2026-07-28"
)

// Todo is one item of a todo list.
type Todo struct {
	ID        int       `json:"id" jsonschema:"the todo's id, unique within its list"`
	Title     string    `json:"title" jsonschema:"what is to be done"`
	Done      bool      `json:"done" jsonschema:"whether the todo is completed"`
	CreatedAt time.Time `json:"created_at" jsonschema:"when the todo was added"`
}

var (
	errEmptyTitle   = errors.New("todo: title must not be empty")
	errLongTitle    = fmt.Errorf("todo: title must be at most %d characters", maxTitleRunes)
	errBadTitle     = errors.New("todo: title must be valid UTF-8 without control characters")
	errListFull     = fmt.Errorf("todo: a list holds at most %d todos", maxTodosPerList)
	errTooManyLists = errors.New("todo: too many lists")
	errNotFound     = errors.New("todo: no todo with that id")
)

// store keeps one todo list per subject, in memory.
type store struct {
	now   func() time.Time
	mu    sync.Mutex
	lists map[string]*todoList
}

type todoList struct {
	nextID int
	items  map[int]*Todo
}

func newStore(now func() time.Time) *store {
	return &store{now: now, lists: make(map[string]*todoList)}
}

func validTitle(title string) (string, error) {
	title = strings.TrimSpace(title)
	if title == "" {
		return "", errEmptyTitle
	}
	if !utf8.ValidString(title) {
		return "", errBadTitle
	}
	if utf8.RuneCountInString(title) > maxTitleRunes {
		return "", errLongTitle
	}
	for _, r := range title {
		if r < 0x20 || r == 0x7f {
			return "", errBadTitle
		}
	}
	return title, nil
}

func (s *store) add(subject, title string) (Todo, error) {
	title, err := validTitle(title)
	if err != nil {
		return Todo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lists[subject]
	if !ok {
		if len(s.lists) >= maxLists {
			return Todo{}, errTooManyLists
		}
		l = &todoList{nextID: 1, items: make(map[int]*Todo)}
		s.lists[subject] = l
	}
	if len(l.items) >= maxTodosPerList {
		return Todo{}, errListFull
	}
	t := &Todo{ID: l.nextID, Title: title, CreatedAt: s.now().UTC()}
	l.nextID++
	l.items[t.ID] = t
	return *t, nil
}

func (s *store) list(subject string, includeDone bool) []Todo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Todo{} // never nil: the output schema wants an array
	l, ok := s.lists[subject]
	if !ok {
		return out
	}
	for _, t := range l.items {
		if t.Done && !includeDone {
			continue
		}
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *store) complete(subject string, id int) (Todo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lists[subject]
	if !ok {
		return Todo{}, errNotFound
	}
	t, ok := l.items[id]
	if !ok {
		return Todo{}, errNotFound
	}
	t.Done = true
	return *t, nil
}

func (s *store) delete(subject string, id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lists[subject]
	if !ok {
		return errNotFound
	}
	if _, ok := l.items[id]; !ok {
		return errNotFound
	}
	delete(l.items, id)
	return nil
}

// config is what main's flags set.
type config struct {
	// SubjectHeader carries the authenticated subject set by the guard.
	SubjectHeader string
	// IdentityPrefix selects the headers whoami reports.
	IdentityPrefix string
	// AllowAnyHost turns off the go-sdk's DNS-rebinding protection.
	AllowAnyHost bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives the request log; it never holds header values other
	// than identity headers' names.
	Logger *slog.Logger
}

// app is the sample server: the MCP server, its store and the HTTP handler.
type app struct {
	cfg        config
	store      *store
	server     *mcp.Server
	authSeen   atomic.Int64 // requests that carried an Authorization header
	reqCounter atomic.Int64
}

func newApp(cfg config) *app {
	if cfg.SubjectHeader == "" {
		cfg.SubjectHeader = defaultSubject
	}
	if cfg.IdentityPrefix == "" {
		cfg.IdentityPrefix = defaultIdPrefix
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &app{cfg: cfg, store: newStore(cfg.Now)}
	a.server = mcp.NewServer(&mcp.Implementation{Name: serverName, Title: "Todo (caddy-mcpauth sample)", Version: serverVersion}, &mcp.ServerOptions{
		Instructions: "A small todo list. Each signed-in user has their own list.",
	})
	a.addTools()
	return a
}

// subject is the list a request works on: the guard's subject header, or the
// shared anonymous list when the server runs without a guard in front.
func (a *app) subject(req *mcp.CallToolRequest) string {
	if req.Extra != nil && req.Extra.Header != nil {
		if s := strings.TrimSpace(req.Extra.Header.Get(a.cfg.SubjectHeader)); s != "" {
			return s
		}
	}
	return anonymousList
}

type addTodoIn struct {
	Title string `json:"title" jsonschema:"what is to be done (1 to 200 characters)"`
}

type todoOut struct {
	Todo Todo `json:"todo"`
}

type listTodosIn struct {
	IncludeDone bool `json:"include_done,omitempty" jsonschema:"also list completed todos"`
}

type listTodosOut struct {
	Todos []Todo `json:"todos"`
}

type idIn struct {
	ID int `json:"id" jsonschema:"the todo's id"`
}

type deleteOut struct {
	Deleted int `json:"deleted"`
}

type slowCountIn struct {
	N       int `json:"n" jsonschema:"how far to count (1 to 100)"`
	DelayMS int `json:"delay_ms,omitempty" jsonschema:"pause between steps in milliseconds (0 to 5000, default 50)"`
}

type slowCountOut struct {
	Count int `json:"count"`
}

type whoamiIn struct{}

type whoamiOut struct {
	// Subject is the value of the subject header, empty without one.
	Subject string `json:"subject"`
	// IdentityHeaders are the request's headers with the identity prefix.
	IdentityHeaders map[string]string `json:"identity_headers"`
	// AuthorizationHeaderSeen tells whether this request carried an
	// Authorization header (it must not: the guard strips it).
	AuthorizationHeaderSeen bool `json:"authorization_header_seen"`
	// AuthorizationHeadersSeenTotal counts such requests since start.
	AuthorizationHeadersSeenTotal int64 `json:"authorization_headers_seen_total"`
}

func (a *app) addTools() {
	mcp.AddTool(a.server, &mcp.Tool{Name: "add_todo", Title: "Add a todo", Description: "Add a todo to your list."},
		func(ctx context.Context, req *mcp.CallToolRequest, in addTodoIn) (*mcp.CallToolResult, todoOut, error) {
			t, err := a.store.add(a.subject(req), in.Title)
			if err != nil {
				return nil, todoOut{}, err
			}
			return nil, todoOut{Todo: t}, nil
		})
	mcp.AddTool(a.server, &mcp.Tool{Name: "list_todos", Title: "List todos", Description: "List your todos (open ones only unless include_done is set)."},
		func(ctx context.Context, req *mcp.CallToolRequest, in listTodosIn) (*mcp.CallToolResult, listTodosOut, error) {
			return nil, listTodosOut{Todos: a.store.list(a.subject(req), in.IncludeDone)}, nil
		})
	mcp.AddTool(a.server, &mcp.Tool{Name: "complete_todo", Title: "Complete a todo", Description: "Mark a todo as done."},
		func(ctx context.Context, req *mcp.CallToolRequest, in idIn) (*mcp.CallToolResult, todoOut, error) {
			t, err := a.store.complete(a.subject(req), in.ID)
			if err != nil {
				return nil, todoOut{}, err
			}
			return nil, todoOut{Todo: t}, nil
		})
	mcp.AddTool(a.server, &mcp.Tool{Name: "delete_todo", Title: "Delete a todo", Description: "Delete a todo."},
		func(ctx context.Context, req *mcp.CallToolRequest, in idIn) (*mcp.CallToolResult, deleteOut, error) {
			if err := a.store.delete(a.subject(req), in.ID); err != nil {
				return nil, deleteOut{}, err
			}
			return nil, deleteOut{Deleted: in.ID}, nil
		})
	mcp.AddTool(a.server, &mcp.Tool{Name: "slow_count", Title: "Count slowly", Description: "Count to n slowly, reporting progress at every step."},
		a.slowCount)
	mcp.AddTool(a.server, &mcp.Tool{Name: "whoami", Title: "Who am I", Description: "Show the identity the server received from the proxy in front of it."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ whoamiIn) (*mcp.CallToolResult, whoamiOut, error) {
			out := whoamiOut{IdentityHeaders: map[string]string{}, AuthorizationHeadersSeenTotal: a.authSeen.Load()}
			if req.Extra != nil && req.Extra.Header != nil {
				h := req.Extra.Header
				out.Subject = h.Get(a.cfg.SubjectHeader)
				_, out.AuthorizationHeaderSeen = h["Authorization"]
				prefix := http.CanonicalHeaderKey(a.cfg.IdentityPrefix)
				for name, values := range h {
					if strings.HasPrefix(strings.ToLower(name), strings.ToLower(prefix)) {
						out.IdentityHeaders[name] = strings.Join(values, ", ")
					}
				}
			}
			return nil, out, nil
		})
}

func (a *app) slowCount(ctx context.Context, req *mcp.CallToolRequest, in slowCountIn) (*mcp.CallToolResult, slowCountOut, error) {
	if in.N < 1 || in.N > maxSlowCount {
		return nil, slowCountOut{}, fmt.Errorf("todo: n must be between 1 and %d", maxSlowCount)
	}
	delay := defaultDelay
	if in.DelayMS != 0 {
		delay = time.Duration(in.DelayMS) * time.Millisecond
	}
	if delay < 0 || delay > maxSlowDelay {
		return nil, slowCountOut{}, fmt.Errorf("todo: delay_ms must be between 0 and %d", maxSlowDelay.Milliseconds())
	}
	token := req.Params.GetProgressToken()
	for i := 1; i <= in.N; i++ {
		if delay > 0 {
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, slowCountOut{}, ctx.Err()
			case <-timer.C:
			}
		}
		if token != nil {
			err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token,
				Progress:      float64(i),
				Total:         float64(in.N),
				Message:       fmt.Sprintf("counted %d of %d", i, in.N),
			})
			if err != nil {
				return nil, slowCountOut{}, fmt.Errorf("todo: sending progress: %w", err)
			}
		}
	}
	return nil, slowCountOut{Count: in.N}, nil
}

// handler is the whole HTTP surface: /mcp and /healthz, wrapped in the
// middleware that watches for Authorization headers.
func (a *app) handler() http.Handler {
	getServer := func(*http.Request) *mcp.Server { return a.server }
	stateful := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Logger:                     a.cfg.Logger,
		DisableLocalhostProtection: a.cfg.AllowAnyHost,
		SessionTimeout:             30 * time.Minute,
	})
	// The go-sdk serves 2026-07-28 only from a stateless handler, and a
	// stateless handler refuses the session-based revisions' GET and
	// DELETE: one handler per kind, on the same server and store.
	stateless := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Logger:                     a.cfg.Logger,
		DisableLocalhostProtection: a.cfg.AllowAnyHost,
		Stateless:                  true,
	})
	mux := http.NewServeMux()
	mux.Handle(mcpPath, byRevision(stateful, stateless))
	mux.HandleFunc("GET "+healthPath, a.healthz)
	return a.watch(mux)
}

// byRevision sends requests of MCP 2026-07-28 and later (by their
// MCP-Protocol-Version header, which that revision requires on every request
// and which must agree with the body's _meta: the SDK checks) to the
// stateless handler, and every other request (initialize, sessions, the
// standalone GET stream, DELETE) to the stateful one. A stateful session's
// requests carry the version negotiated at initialize, always older.
func byRevision(stateful, stateless http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("MCP-Protocol-Version"); v >= revisionStateless {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
}

// watch logs every request (never a header's value) and counts the ones that
// carried an Authorization header, which the guard in front must strip.
func (a *app) watch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := a.reqCounter.Add(1)
		_, hasAuth := r.Header["Authorization"]
		hasSubject := r.Header.Get(a.cfg.SubjectHeader) != ""
		if hasAuth {
			a.authSeen.Add(1)
			a.cfg.Logger.Warn("todo: request carried an Authorization header; the proxy in front must not forward client credentials",
				"request", n, "method", r.Method, "path", r.URL.Path)
		}
		a.cfg.Logger.Debug("todo: request", "request", n, "method", r.Method, "path", r.URL.Path,
			"authorization_header", hasAuth, "subject_header", hasSubject)
		next.ServeHTTP(w, r)
	})
}

type health struct {
	Status                   string `json:"status"`
	AuthorizationHeadersSeen int64  `json:"authorization_headers_seen"`
}

func (a *app) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(health{Status: "ok", AuthorizationHeadersSeen: a.authSeen.Load()})
}
