package resourceguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// Scope-filtered tools/list (requirement 31): with per-tool scopes, the
// result of a tools/list request reaches the client with only the tools its
// token may call. The guard reads the request body anyway (its policy
// depends on the method), so it knows which requests are tools/list; only
// their responses are wrapped. A JSON answer is held (up to
// MaxToolsListBytes) and rewritten; an SSE answer is passed on event by
// event, flushed after each, and only events whose data is a JSON-RPC
// result with a "tools" array are rewritten. Every other response goes
// through the original ResponseWriter untouched. The filter fails closed: a
// result that cannot be read, is compressed or is over the limit is replaced
// by a JSON-RPC error, never passed on unfiltered.

// errListTooLarge ends the upstream's copy of a refused result.
var errListTooLarge = errors.New("resourceguard: tools/list result over the filter's limit")

// ServeFiltered calls next with w, or, when d is a tools/list request whose
// result must be filtered, with a writer that filters it.
func (g *Guard) ServeFiltered(w http.ResponseWriter, r *http.Request, d *Decision, next http.Handler) {
	fw, finish := g.FilterWriter(w, d)
	next.ServeHTTP(fw, r)
	_ = finish()
}

// FilterWriter returns the ResponseWriter to give the upstream for the
// allowed request d: w itself, unless d is a tools/list request whose result
// must be filtered. finish must be called once the upstream is done (it
// writes a held JSON answer).
func (g *Guard) FilterWriter(w http.ResponseWriter, d *Decision) (http.ResponseWriter, func() error) {
	if d == nil || !d.listTools {
		return w, func() error { return nil }
	}
	fw := &toolsListWriter{w: w, f: g.listFilter(d), max: g.maxListBytes}
	if g.catalog.arm(g.now()) {
		fw.f.collecting = true
		fw.listed = g.catalog.fn
	}
	return fw, fw.finish
}

// listFilter is the filter of one request: it keeps the tools d's token may
// call.
func (g *Guard) listFilter(d *Decision) *toolFilter {
	var id json.RawMessage
	if len(d.listIDs) == 1 {
		id = d.listIDs[0]
	}
	return &toolFilter{keep: func(name string) bool { return g.tools.allows(d.scopes, name) }, id: id}
}

// toolFilter rewrites JSON-RPC messages.
type toolFilter struct {
	keep func(tool string) bool
	id   json.RawMessage // of the tools/list request, for error answers
	// collecting: record every tool's name, title and description in
	// listed, kept or not (toolcatalog.go).
	collecting bool
	listed     []ListedTool
}

// filterBody filters a JSON body: one JSON-RPC message or a batch of them,
// in one pass. It returns body itself (changed false) when nothing is
// removed. Removing a tool cuts its bytes out of the array: everything else
// is passed on as the upstream wrote it.
func (f *toolFilter) filterBody(body []byte) ([]byte, bool, error) {
	cuts, err := f.findCuts(body)
	if err != nil || len(cuts) == 0 {
		return body, false, err
	}
	return appendCut(make([]byte, 0, len(body)), body, cuts), true, nil
}

// findCuts scans body and returns the tools arrays to shorten.
func (f *toolFilter) findCuts(body []byte) ([]toolsCut, error) {
	var cuts []toolsCut
	s := startDoc(body)
	var err error
	switch {
	case s.i >= len(s.b):
	case s.b[s.i] == '[':
		err = s.array(0, func() error { return f.scanMessage(&s, 1, &cuts) })
	default:
		err = f.scanMessage(&s, 0, &cuts)
	}
	if err != nil {
		return cuts, err
	}
	return cuts, s.endDoc()
}

// appendCut appends body with cuts applied to dst. dst may be body[:0]:
// a cut only removes bytes, so the writes never pass the reads.
func appendCut(dst, body []byte, cuts []toolsCut) []byte {
	last := 0
	for _, c := range cuts {
		dst = append(dst, body[last:c.start]...)
		dst = append(dst, '[')
		for i, k := range c.kept {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, body[k[0]:k[1]]...)
		}
		dst = append(dst, ']')
		last = c.end
	}
	return append(dst, body[last:]...)
}

// toolsCut replaces the tools array at [start, end) by its kept elements.
type toolsCut struct {
	start, end int
	kept       [][2]int
}

// scanMessage scans the value at s.i; when it is a JSON-RPC message whose
// result has a "tools" array (members matched as Go's encoding/json matches
// them; a member twice in any spelling is an error) and some of its tools
// may not be called, it records the cut. A tool that is not an object with
// a string name is removed (it cannot be authorized).
func (f *toolFilter) scanMessage(s *jscan, depth int, cuts *[]toolsCut) error {
	if s.b[s.i] != '{' {
		return s.value(depth)
	}
	twice := errMemberTwice
	seenResult := false
	return s.object(depth, func(key []byte, esc bool) error {
		if !keyIs(key, esc, "result") {
			return s.value(depth + 1)
		}
		if seenResult {
			return twice
		}
		seenResult = true
		if s.b[s.i] != '{' {
			return s.value(depth + 1)
		}
		seenTools := false
		return s.object(depth+1, func(key []byte, esc bool) error {
			if !keyIs(key, esc, "tools") {
				return s.value(depth + 2)
			}
			if seenTools {
				return twice
			}
			seenTools = true
			if s.b[s.i] != '[' {
				return s.value(depth + 2)
			}
			// Room for a typical list's kept tools, so that the
			// appends below do not grow the slice one step at a time.
			cut := toolsCut{start: s.i, kept: make([][2]int, 0, 32)}
			n := 0
			err := s.array(depth+2, func() error {
				n++
				vs := s.i
				keep, err := f.scanTool(s, depth+3)
				if keep {
					cut.kept = append(cut.kept, [2]int{vs, s.i})
				}
				return err
			})
			cut.end = s.i
			if err == nil && len(cut.kept) < n {
				*cuts = append(*cuts, cut)
			}
			return err
		})
	})
}

// scanTool scans one element of a tools array and says whether to keep it.
func (f *toolFilter) scanTool(s *jscan, depth int) (bool, error) {
	if s.b[s.i] != '{' {
		return false, s.value(depth)
	}
	var name, title, desc [2]int
	dup := false
	err := s.object(depth, func(key []byte, esc bool) error {
		var at *[2]int
		switch m := memberName(key, esc); {
		case m.is("name"):
			if name[1] != 0 {
				dup = true
			}
			at = &name
		case f.collecting && m.is("title"):
			at = &title
		case f.collecting && m.is("description"):
			at = &desc
		default:
			return s.value(depth + 1)
		}
		var err error
		*at, err = s.span(depth + 1)
		return err
	})
	if err != nil || dup || name[1] == 0 || s.b[name[0]] != '"' {
		return false, err
	}
	if f.collecting {
		f.collect(s.b[name[0]:name[1]], stringSpan(s.b, title), stringSpan(s.b, desc))
	}
	raw, esc, _ := (&jscan{b: s.b, i: name[0]}).str()
	if len(raw) == 0 {
		return false, nil
	}
	if esc || !isASCII(raw) {
		return f.keep(strValue(raw, esc)), nil
	}
	// The common case, a plain ASCII name: looked up without a copy. keep
	// only reads the name (a map lookup), and s.b outlives the call.
	return f.keep(unsafe.String(&raw[0], len(raw))), nil
}

// stringSpan is the JSON string at span in b, or nil when the span is
// empty or holds another kind of value.
func stringSpan(b []byte, span [2]int) []byte {
	if span[1] == 0 || b[span[0]] != '"' {
		return nil
	}
	return b[span[0]:span[1]]
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// errorMessage is the JSON-RPC error that replaces a result the filter
// cannot pass on.
func (f *toolFilter) errorMessage() []byte {
	return bytes.TrimSuffix(rpcErrorBody(f.id, rpcInternalError, "the tools/list result could not be filtered for this token"), []byte("\n"))
}

// Writer modes.
const (
	modeUndecided = iota
	modePass      // not a result to filter: straight through
	modeJSON      // held, filtered at finish
	modeSSE       // event by event
	modeDone      // refused or finished: further writes fail
)

// toolsListWriter filters the response to one tools/list request.
type toolsListWriter struct {
	w    http.ResponseWriter
	f    *toolFilter
	max  int64
	mode int
	buf  []byte
	sse  sseFramer
	// listed receives the tools collected from a result passed on whole
	// (nil: not collecting this time).
	listed func([]ListedTool)
}

func (t *toolsListWriter) Header() http.Header { return t.w.Header() }

func (t *toolsListWriter) WriteHeader(code int) {
	if t.mode != modeUndecided {
		if t.mode == modePass {
			t.w.WriteHeader(code)
		}
		return
	}
	if code >= 100 && code < 200 {
		t.w.WriteHeader(code)
		return
	}
	h := t.w.Header()
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(h.Get("Content-Type"), ";", 2)[0]))
	filtered := code == http.StatusOK && (ct == "application/json" || ct == "text/event-stream")
	if !filtered {
		t.mode = modePass
		t.w.WriteHeader(code)
		return
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		// Asked uncompressed, answered compressed: it cannot be read.
		t.refuseJSON()
		return
	}
	h.Del("Content-Length")
	if ct == "application/json" {
		t.mode = modeJSON
		t.buf = getListBuf()
		return
	}
	t.mode = modeSSE
	t.sse = sseFramer{f: t.f, max: t.max, scratch: getListBuf()}
	t.w.WriteHeader(code)
}

func (t *toolsListWriter) Write(p []byte) (int, error) {
	if t.mode == modeUndecided {
		t.WriteHeader(http.StatusOK)
	}
	switch t.mode {
	case modePass:
		return t.w.Write(p)
	case modeJSON:
		if int64(len(t.buf)+len(p)) > t.max {
			t.refuseJSON()
			return 0, errListTooLarge
		}
		t.buf = append(t.buf, p...)
		return len(p), nil
	case modeSSE:
		out, err := t.sse.feed(p)
		if len(out) > 0 {
			// Sent on at the upstream's next Flush (every SSE write, with
			// Caddy's reverse_proxy), as the unfiltered stream would be.
			if _, werr := t.w.Write(out); werr != nil {
				return 0, werr
			}
		}
		if err != nil {
			t.mode = modeDone
			return 0, err
		}
		return len(p), nil
	}
	return 0, errListTooLarge
}

// refuseJSON answers 502 with a JSON-RPC error instead of the result.
func (t *toolsListWriter) refuseJSON() {
	t.mode = modeDone
	putListBuf(t.buf)
	t.buf = nil
	body := append(t.f.errorMessage(), '\n')
	h := t.w.Header()
	for _, k := range []string{"Content-Encoding", "Content-Length", "Etag", "Last-Modified", "Content-Range"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	t.w.WriteHeader(http.StatusBadGateway)
	_, _ = t.w.Write(body)
}

func (t *toolsListWriter) finish() error {
	defer t.release()
	switch t.mode {
	case modeJSON:
		cuts, err := t.f.findCuts(t.buf)
		if err != nil {
			t.refuseJSON()
			return err
		}
		out := t.buf
		if len(cuts) > 0 {
			out = appendCut(t.buf[:0], t.buf, cuts) // in place: the buffer is ours
		}
		t.mode = modeDone
		t.handOff()
		t.w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		t.w.WriteHeader(http.StatusOK)
		_, err = t.w.Write(out)
		return err
	case modeSSE:
		t.mode = modeDone
		t.handOff() // what the dispatched events listed, not an unterminated one
		out := t.sse.end()
		if len(out) > 0 {
			_, err := t.w.Write(out)
			t.flush()
			return err
		}
	}
	return nil
}

// release gives the writer's buffers back to listBufs; the writer is not
// used after finish.
func (t *toolsListWriter) release() {
	putListBuf(t.buf)
	putListBuf(t.sse.scratch)
	t.buf, t.sse.scratch = nil, nil
}

// listBufs recycles the buffers of filtered tools/list results: a result
// of 20 tools is about 5 KB, allocated per request, and was most of the
// guard's garbage on that path. A buffer is reused only after the writer
// wrote it (a ResponseWriter must not retain p) and finished; buffers over
// maxPooledList are left to the collector, so the pool never pins the
// memory of one large result.
var listBufs sync.Pool

const maxPooledList = 64 << 10

func getListBuf() []byte {
	if p, ok := listBufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

func putListBuf(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledList {
		return
	}
	b = b[:0]
	listBufs.Put(&b)
}

// handOff gives the collected tools to the catalog, once.
func (t *toolsListWriter) handOff() {
	if t.listed != nil && len(t.f.listed) > 0 {
		t.listed(t.f.listed)
	}
	t.listed = nil
	t.f.collecting = false
}

func (t *toolsListWriter) flush() {
	if f, ok := t.w.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(t.w).Flush()
}

// Flush sends what is ready: nothing of a held JSON answer, every complete
// event of an SSE stream (an incomplete one waits for its end).
func (t *toolsListWriter) Flush() {
	if t.mode == modePass || t.mode == modeSSE {
		t.flush()
	}
}

// FlushError is Flush for http.ResponseController.
func (t *toolsListWriter) FlushError() error {
	if t.mode == modePass || t.mode == modeSSE {
		if f, ok := t.w.(interface{ FlushError() error }); ok {
			return f.FlushError()
		}
		t.flush()
	}
	return nil
}

// sseFramer splits a text/event-stream into events (lines end with CRLF,
// LF or CR; an empty line ends an event) and passes each on as soon as it
// is complete: verbatim, or rewritten when its data is a tools result.
type sseFramer struct {
	f   *toolFilter
	max int64
	buf []byte // the current, incomplete event
	// scratch is where feed builds rewritten output (from listBufs; given
	// back by the writer's finish).
	scratch []byte
	// scan is where the search for the next line end resumes in buf.
	scan int
	// lineStart is the offset of the current line in buf.
	lineStart int
}

// feed takes more of the stream and returns the bytes to send on, valid
// until the next call. The events complete in p are framed in place: a run
// of unchanged events at its start is passed on as a slice of p; once an
// event is rewritten, the output is built in the framer's reused buffer.
// Only an incomplete tail is kept (copied once per write, not per event).
func (s *sseFramer) feed(p []byte) ([]byte, error) {
	b := p
	inPlace := len(s.buf) == 0 // b is the caller's p, not s.buf
	if !inPlace {
		s.buf = append(s.buf, p...)
		b = s.buf
	}
	var built []byte // nil until the output needs a buffer
	passed := 0      // with built nil and inPlace, b[:passed] is the output
	done := 0        // b[:done] is framed and passed on
	for {
		end, next, ok := nextLine(b, &s.scan)
		if !ok {
			break
		}
		blank := end == s.lineStart
		s.lineStart, s.scan = next, next
		if !blank {
			continue
		}
		if int64(next-done) > s.max {
			break // refused below
		}
		raw := b[done:next]
		done = next
		data, lines, cuts, err := s.inspect(raw)
		if err == nil && cuts == nil {
			if built == nil && inPlace {
				passed = next // still contiguous in p: no copy
				continue
			}
			if built == nil {
				built = s.scratch[:0]
			}
			built = append(built, raw...)
			continue
		}
		if built == nil {
			// b[:passed] is a slice of p, which built never aliases.
			built = append(s.scratch[:0], b[:passed]...)
		}
		if err != nil {
			built = append(built, s.errorEvent()...)
		} else {
			built = s.rewrite(built, raw, data, lines, cuts)
		}
	}
	s.scan -= done
	s.lineStart -= done
	if !inPlace {
		// b is s.buf: drop what was framed (an overlapping copy).
		s.buf = append(s.buf[:0], b[done:]...)
	} else {
		s.buf = append(s.buf, b[done:]...)
	}
	out := b[:passed:passed] // capacity cut: an append below must not write into p
	if built != nil {
		s.scratch = built[:0] // reused by the next call (the caller has written out by then)
		out = built
	}
	if int64(len(s.buf)) > s.max {
		out = append(out, s.errorEvent()...)
		s.buf = nil
		return out, errListTooLarge
	}
	return out, nil
}

// nextLine finds the end of the line that continues at *scan: end is the
// offset of its terminator, next the offset after it. A CR at the end of
// b waits for the next byte (it may be a CRLF); *scan records where the
// search resumes.
func nextLine(b []byte, scan *int) (end, next int, ok bool) {
	if i := lineBreak(b[*scan:]); i >= 0 {
		i += *scan
		if b[i] == '\n' {
			return i, i + 1, true
		}
		if i+1 == len(b) {
			*scan = i
			return 0, 0, false
		}
		if b[i+1] == '\n' {
			return i, i + 2, true
		}
		return i, i + 1, true
	}
	*scan = len(b)
	return 0, 0, false
}

// lineBreak is the index of the first CR or LF in b, or -1: two vectorised
// byte searches instead of a byte-by-byte loop (a tools/list result is one
// long data line).
func lineBreak(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	in := b
	if n >= 0 {
		in = b[:n]
	}
	if r := bytes.IndexByte(in, '\r'); r >= 0 {
		return r
	}
	return n
}

// end handles what the stream left unterminated. An SSE client never
// dispatches an unterminated event, so it is passed on only when it carries
// no tools result.
func (s *sseFramer) end() []byte {
	ev := s.buf
	s.buf = nil
	if len(ev) == 0 {
		return nil
	}
	if data, n := sseData(ev); n > 0 && len(data) > 0 {
		if _, changed, err := s.f.filterBody(data); err != nil || changed {
			return nil
		}
	}
	return ev
}

// inspect reads one complete event (raw ends with its blank line): cuts
// is nil when it goes on unchanged (no data, or not a tools result to
// filter); an error means it must be replaced by an error event. lines is
// the number of data fields data was joined from.
func (s *sseFramer) inspect(raw []byte) (data []byte, lines int, cuts []toolsCut, err error) {
	data, lines = sseData(raw)
	if lines == 0 || len(data) == 0 {
		return nil, 0, nil, nil
	}
	before := len(s.f.listed)
	cuts, err = s.f.findCuts(data)
	if err != nil {
		// Data that is not a JSON-RPC message the filter can read: a
		// client could not read it either, except leniently. Fail closed,
		// and keep nothing of it for the consent page.
		s.f.listed = s.f.listed[:before]
		return nil, 0, nil, err
	}
	if len(cuts) == 0 {
		return nil, 0, nil, nil
	}
	return data, lines, cuts, nil
}

// rewrite appends the event raw with its data (joined from lines data
// fields) cut to b: the event's other fields (event, id, retry, comments),
// then the data on one line.
func (s *sseFramer) rewrite(b, raw, data []byte, lines int, cuts []toolsCut) []byte {
	start := len(b)
	for len(raw) > 0 {
		var line []byte
		line, raw = cutSSELine(raw)
		if len(line) == 0 || sseField(line) == "data" {
			continue
		}
		b = append(b, line...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	mark := len(b)
	b = appendCut(b, data, cuts)
	if lines > 1 {
		// Data joined from several lines holds line breaks (one data
		// line cannot): sent as one line, compacted.
		var compact bytes.Buffer
		if err := json.Compact(&compact, b[mark:]); err != nil {
			return append(b[:start], s.errorEvent()...)
		}
		b = append(b[:mark], compact.Bytes()...)
	}
	return append(b, '\n', '\n')
}

func (s *sseFramer) errorEvent() []byte {
	b := []byte("event: message\ndata: ")
	b = append(b, s.f.errorMessage()...)
	return append(b, '\n', '\n')
}

// cutSSELine splits off the first line of raw (ended by CRLF, LF or CR, or
// by the end of raw) and returns it without its terminator, and the rest.
func cutSSELine(raw []byte) (line, rest []byte) {
	i := lineBreak(raw)
	if i < 0 {
		return raw, nil
	}
	line = raw[:i]
	if raw[i] == '\r' && i+1 < len(raw) && raw[i+1] == '\n' {
		i++
	}
	return line, raw[i+1:]
}

// sseField is the field name of a line ("" for a comment); the string
// conversions in comparisons do not allocate.
func sseField(line []byte) string {
	if len(line) > 0 && line[0] == ':' {
		return ""
	}
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		line = line[:i]
	}
	if string(line) == "data" {
		return "data"
	}
	return "other"
}

// sseData joins the event's data fields as an SSE client does: each value
// (after "data:" and one optional space) followed by LF, the last LF
// removed. n is the number of data fields (0: none).
func sseData(raw []byte) (data []byte, n int) {
	for len(raw) > 0 {
		var line []byte
		line, raw = cutSSELine(raw)
		if sseField(line) != "data" {
			continue
		}
		v := line[len("data"):]
		if len(v) > 0 && v[0] == ':' {
			v = v[1:]
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
		}
		switch n {
		case 0:
			data = v // the common case, one data line: no copy
		case 1:
			data = append(append(append([]byte(nil), data...), '\n'), v...)
		default:
			data = append(append(data, '\n'), v...)
		}
		n++
	}
	return data, n
}
