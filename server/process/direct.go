package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// plainRequest tells whether the proxy sends r itself (serveDirect): a GET,
// HEAD or OPTIONS without a body, an upgrade or trailers, whose Host and
// query httputil.ReverseProxy would pass unchanged. Every other request
// goes through httputil.ReverseProxy.
func plainRequest(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	return (r.Body == nil || r.Body == http.NoBody) && len(r.Trailer) == 0 &&
		r.Header["Upgrade"] == nil && plainHost(r.Host) && cleanQuery(r.URL.RawQuery)
}

// plainHost is a Host header (one the server accepted) that net/http
// would send as it is: printable ASCII without an IPv6 zone.
func plainHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] >= 0x7f || h[i] == '%' {
			return false
		}
	}
	return h != ""
}

// validHeaderName is a header name net/http would write: a token (RFC
// 9110, 5.6.2).
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// hasToken tells whether one of the comma-separated values lists token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// cleanQuery is a query that httputil.ReverseProxy passes unchanged: it
// re-encodes one with a ';', a bad escape or very many parameters.
func cleanQuery(q string) bool {
	if strings.Count(q, "&") >= 1000 {
		return false
	}
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// hopHeaders are the request and response headers that concern one
// connection (RFC 9110, 7.6.1; httputil.ReverseProxy's list), not passed on.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// notPassed are the request headers serveDirect does not copy: the
// hop-by-hop ones, those it writes itself (Host, the forwarding headers),
// Content-Length (a plain request has no body) and ForwardedByHeader.
var notPassed = map[string]bool{
	"Host": true, "Content-Length": true, "Forwarded": true,
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
	http.CanonicalHeaderKey(BaseURLHeader): true, "X-Rsc-Request": true,
	http.CanonicalHeaderKey(ForwardedByHeader): true,
}

func init() {
	for k := range hopHeaders {
		notPassed[k] = true
	}
}

// connectionTokens are the header names a Connection header lists (they
// are hop-by-hop too), canonical; nil for none.
func connectionTokens(h http.Header) map[string]bool {
	var names map[string]bool
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				if names == nil {
					names = map[string]bool{}
				}
				names[textproto.CanonicalMIMEHeaderKey(name)] = true
			}
		}
	}
	return names
}

// writeRequest writes the request for the app: r with t's path, the
// headers rewrite sets, and r's other headers but the hop-by-hop ones, as
// net/http would write them (values on one line, trimmed).
func writeRequest(bw *bufio.Writer, r *http.Request, t *target) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	u := url.URL{Path: t.path, RawPath: t.raw}
	bw.WriteString(u.EscapedPath())
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	skip := connectionTokens(r.Header)
	for k, vv := range r.Header {
		if notPassed[k] || skip[k] || !validHeaderName(k) {
			continue
		}
		for _, v := range vv {
			writeHeader(bw, k, v)
		}
	}
	if hasToken(r.Header["Te"], "trailers") {
		writeHeader(bw, "Te", "trailers")
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		writeHeader(bw, "X-Forwarded-For", ip)
	}
	writeHeader(bw, "X-Forwarded-Host", t.host)
	writeHeader(bw, "X-Forwarded-Proto", t.proto)
	writeHeader(bw, BaseURLHeader, t.baseURL)
	writeHeader(bw, "X-RSC-Request", t.requestURL)
	bw.WriteString("\r\n")
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func writeHeader(bw *bufio.Writer, k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = newlineToSpace.Replace(v)
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(textproto.TrimString(v))
	bw.WriteString("\r\n")
}

// serveDirect answers a plain request (plainRequest) over one of the
// loopTransport's keep-alive connections to the process, on the request's
// goroutine, without httputil.ReverseProxy and http.Transport: it writes
// the request itself (writeRequest), reads the answer with
// http.ReadResponse and copies it to w, hop-by-hop headers dropped, 1xx
// answers passed on. The request's context ends the wait for the app
// (the client went away). A response is flushed whenever the proxy has
// written all the app has sent so far and more is to come: streams
// (unknown length, event streams) after every write; a response of known
// length when nothing more has arrived yet, and its headers within 20 ms
// when its body is slow to start.
func (px *Proxy) serveDirect(w http.ResponseWriter, r *http.Request, t *target) {
	ctx := r.Context()
	lt := px.loop
	var (
		pc   *loopConn
		resp *http.Response
		stop func() bool
	)
	for {
		var (
			reused bool
			err    error
		)
		pc, reused, err = lt.get(ctx, t.key, t.dial)
		if err != nil {
			px.proxyError(w, r, err)
			return
		}
		c := pc.c // not pc: the closure outlives this loop, pc need not
		stop = context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
		resp, err = px.exchange(w, r, t, pc)
		if err == nil {
			break
		}
		stop()
		pc.c.Close()
		if ctx.Err() != nil {
			px.proxyError(w, r, ctx.Err())
			return
		}
		var stale *staleConnError
		if reused && errors.As(err, &stale) {
			// The process closed this idle connection (gunicorn does after
			// 2 s) before reading the request: safe to send it again.
			continue
		}
		px.proxyError(w, r, err)
		return
	}

	h := w.Header()
	skip := connectionTokens(resp.Header)
	for k, vv := range resp.Header {
		if hopHeaders[k] || skip[k] {
			continue
		}
		if old, ok := h[k]; ok {
			h[k] = append(old, vv...)
		} else {
			h[k] = vv
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	// finish gives the connection back once the body has been read to
	// its end, before its last bytes go to the client (who may send its
	// next request at once); otherwise it closes it.
	done := false
	finish := func(complete bool) {
		done = true
		// stop is false when the request was cancelled: the connection has
		// a deadline in the past by now. Bytes after the end of the
		// response mean the app does not speak HTTP/1.1 as it should: do
		// not read the next answer from them.
		if stop() && complete && !resp.Close && pc.br.Buffered() == 0 {
			lt.put(pc)
			return
		}
		pc.c.Close()
	}
	defer func() {
		if !done {
			finish(false)
		}
	}()
	var rc *http.ResponseController
	flush := func() error {
		if rc == nil {
			rc = http.NewResponseController(w)
		}
		return rc.Flush()
	}
	stream := resp.ContentLength < 0 || isEventStream(resp.Header)
	if resp.Body != http.NoBody && pc.br.Buffered() == 0 {
		// Nothing of the body is here yet: the headers go now for a
		// stream, or after 20 ms without a byte of the body.
		if !stream {
			if waitBody(ctx, pc, 20*time.Millisecond) {
				flush()
			}
		} else {
			flush()
		}
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			t.idle.touch()
		}
		if err == io.EOF {
			finish(true)
		}
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				// The client went away: all that is left is to drop its connection.
				panic(http.ErrAbortHandler)
			}
			if err == nil && (stream || pc.br.Buffered() == 0) {
				if ferr := flush(); ferr != nil {
					panic(http.ErrAbortHandler)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			// The app's answer ended before its end (the process died, or
			// it timed out: the watch logged that): the client must not
			// take what it got for the whole.
			if context.Cause(ctx) == ctx.Err() {
				px.log.Warn("proxy: answer of content process cut short", "path", r.URL.Path, "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
	if len(resp.Trailer) > 0 {
		// Force chunking if there are trailers (as httputil.ReverseProxy).
		flush()
	}
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			h[k] = append(h[k], vv...)
		}
		return
	}
	for k, vv := range resp.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			h.Add(k, v)
		}
	}
}

// exchange sends the request on pc and reads the app's answer, passing 1xx
// answers (103 Early Hints) on to w. A connection that ends before any
// byte of an answer gives a staleConnError.
func (px *Proxy) exchange(w http.ResponseWriter, r *http.Request, t *target, pc *loopConn) (*http.Response, error) {
	writeRequest(pc.bw, r, t)
	if err := pc.bw.Flush(); err != nil {
		return nil, &staleConnError{err}
	}
	for {
		if _, err := pc.br.Peek(1); err != nil {
			return nil, &staleConnError{err}
		}
		if resp := readSimpleResponse(pc.br, r); resp != nil {
			return resp, nil
		}
		resp, err := http.ReadResponse(pc.br, r)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("the app switched protocols on a request without an upgrade")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			h := w.Header()
			for k, vv := range resp.Header {
				h[k] = vv
			}
			w.WriteHeader(resp.StatusCode)
			clear(h)
			continue
		}
		return resp, nil
	}
}

// waitBody waits at most d for the first byte of a body on pc, and says
// whether it is still to come.
func waitBody(ctx context.Context, pc *loopConn, d time.Duration) bool {
	pc.c.SetReadDeadline(time.Now().Add(d))
	_, err := pc.br.Peek(1)
	pc.c.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		// Cancelled meanwhile: keep the deadline that ends the wait.
		pc.c.SetDeadline(time.Unix(1, 0))
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	if ct == "" || !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "text/event-stream") {
		return false
	}
	base, _, _ := mime.ParseMediaType(ct)
	return base == "text/event-stream"
}

// readSimpleResponse reads the head of the app's answer when it is all in
// br's buffer already and simple: HTTP/1.x, a final status, one
// Content-Length (or no body: HEAD, 204, 304), no Transfer-Encoding,
// trailers or folded lines; nil (nothing read) otherwise, for
// http.ReadResponse. It costs a fraction of http.ReadResponse: the head
// is one string, its values one slice.
func readSimpleResponse(br *bufio.Reader, r *http.Request) *http.Response {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil
	}
	head := buf[:end+2]
	// The status line: HTTP/1.x NNN[ reason]
	if len(head) < 14 || string(head[:7]) != "HTTP/1." || (head[7] != '0' && head[7] != '1') || head[8] != ' ' ||
		(head[12] != ' ' && head[12] != '\r') {
		return nil
	}
	code := 0
	for _, c := range head[9:12] {
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 {
		return nil // 1xx: http.ReadResponse, then the next answer
	}
	nl := bytes.IndexByte(head, '\n')
	if head[nl-1] != '\r' {
		return nil
	}
	lines := string(head[nl+1:])
	n := strings.Count(lines, "\n")
	resp := &http.Response{StatusCode: code, ProtoMajor: 1, ProtoMinor: int(head[7] - '0'), Header: make(http.Header, n), ContentLength: -1}
	values := make([]string, n)
	keepAlive := false
	for i := 0; lines != ""; i++ {
		line, rest, _ := strings.Cut(lines, "\n")
		lines = rest
		line, ok := strings.CutSuffix(line, "\r")
		if !ok || line == "" || line[0] == ' ' || line[0] == '\t' || hasControl(line) {
			return nil // a bare LF, a folded line, a control byte
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !validHeaderName(k) {
			return nil
		}
		k = http.CanonicalHeaderKey(k)
		v = textproto.TrimString(v)
		switch k {
		case "Transfer-Encoding", "Trailer":
			return nil
		case "Content-Length":
			cl, ok := parseLength(v)
			if !ok || resp.ContentLength >= 0 && resp.ContentLength != cl {
				return nil
			}
			if resp.ContentLength >= 0 {
				continue // the same length again: once is enough
			}
			resp.ContentLength = cl
		case "Connection":
			for t := range strings.SplitSeq(v, ",") {
				t = textproto.TrimString(t)
				resp.Close = resp.Close || strings.EqualFold(t, "close")
				keepAlive = keepAlive || strings.EqualFold(t, "keep-alive")
			}
		}
		values[i] = v
		if old := resp.Header[k]; old != nil {
			resp.Header[k] = append(old, v)
		} else {
			resp.Header[k] = values[i : i+1 : i+1]
		}
	}
	if resp.ProtoMinor == 0 && !keepAlive {
		resp.Close = true
	}
	switch {
	case r.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified:
		resp.Body = http.NoBody // whatever Content-Length says
	case resp.ContentLength < 0:
		return nil // a body until the connection closes
	case resp.ContentLength == 0:
		resp.Body = http.NoBody
	default:
		resp.Body = &knownBody{br: br, left: resp.ContentLength}
	}
	br.Discard(end + 4)
	return resp
}

// hasControl tells whether s has a byte no header line may have (a
// control character other than tab).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' && s[i] != '\t' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// parseLength parses a Content-Length value: digits only.
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}

// knownBody reads a body of known length from br, with io.EOF along with
// its last bytes (as net/http's bodies do), io.ErrUnexpectedEOF when the
// connection ends before.
type knownBody struct {
	br   *bufio.Reader
	left int64
}

func (b *knownBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *knownBody) Close() error { return nil }
