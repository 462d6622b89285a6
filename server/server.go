// Package server is tierd's HTTP API: NDJSON appends and streamed NDJSON
// reads under /v1, stream and segment listings, status and health, with
// every error answered as JSON {"error":{"code":…,"message":…}} and an
// honest status. docs/api.md is the reference.
package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// Options configures a Server. Zero fields take defaults.
type Options struct {
	// MaxBodyBytes caps an append's body; default 64 MiB.
	MaxBodyBytes int64
	// MaxRecordBytes caps a record's value; default 1 MiB
	// (tiers.DefaultMaxRecordBytes). The engine applies its own cap too.
	MaxRecordBytes int
	// MaxBatchRecords caps the records of one append; default 100000. It
	// bounds the memory a body of tiny records can cost, since a parsed
	// record is larger than its shortest NDJSON line.
	MaxBatchRecords int
	// Logger receives request errors; nil discards.
	Logger *slog.Logger
	// Registerer, when set, receives the server's request metrics.
	Registerer prometheus.Registerer
	// Gatherer, when set, is served at GET /metrics (usually the registry
	// Registerer belongs to); without one /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Now is the ingest clock for records without ts, read once per append;
	// default time.Now.
	Now func() time.Time
	// Migrator serves migrate and explain; without one they answer 409
	// migrator_disabled.
	Migrator *migrator.Migrator
	// Tokens are the bearer tokens the API accepts (New registers each
	// route with the role it needs). None means an open API.
	Tokens []Token
}

// The defaults of Options, in one place.
const (
	DefaultMaxBodyBytes    = policy.DefaultMaxBodyBytes
	DefaultMaxBatchRecords = 100000
	// retryAfterSeconds is what a backpressure answer asks a producer to
	// wait: the flusher frees memory within about that long.
	retryAfterSeconds = 1
	// storageRetryAfterSeconds is what a write refused by storage (disk
	// full, out of descriptors) asks: such conditions take an operator or
	// a checkpoint to clear, not a flush.
	storageRetryAfterSeconds = 5
	// Streamed reads are flushed at least every flushRecords records or
	// flushInterval, so a slow reader sees progress and a fast one is not
	// slowed by a flush per record.
	flushRecords  = 512
	flushInterval = 50 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = tiers.DefaultMaxRecordBytes
	}
	if o.MaxBatchRecords <= 0 {
		o.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Server serves the API over a Backend (a local engine or a cluster
// node). It is an http.Handler; the caller owns the listener, TLS and
// shutdown.
type Server struct {
	eng     Backend
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics       // nil without a Registerer
	auth    *authenticator // nil: an open API
	// roles is the role each registered route needs (route), by pattern.
	roles map[string]policy.Role
	// closing is cancelled by Shutdown; it ends long-polling reads.
	closing   context.Context
	stopWaits context.CancelFunc
}

// New returns a Server for b. It registers its metrics with
// opts.Registerer, if set; servers sharing a registry share the series.
func New(b Backend, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{eng: b, opts: opts, log: opts.Logger, mux: http.NewServeMux(), roles: map[string]policy.Role{}}
	s.closing, s.stopWaits = context.WithCancel(context.Background())
	if len(opts.Tokens) > 0 {
		s.auth = newAuthenticator(opts.Tokens)
	}
	if opts.Registerer != nil {
		s.metrics = newMetrics(opts.Registerer)
	}
	// Every route with the role it needs, in one place (auth.go). Seal is
	// an operator's endpoint: each call makes a segment file and a catalog
	// entry, so a producer's token must not be able to cut a stream into
	// one segment per record.
	s.route("POST /v1/streams/{stream}/records", policy.RoleWrite, http.HandlerFunc(s.handleAppend))
	s.route("GET /v1/streams/{stream}/records", policy.RoleRead, http.HandlerFunc(s.handleRead))
	s.route("GET /v1/streams", policy.RoleRead, http.HandlerFunc(s.handleStreams))
	s.route("GET /v1/streams/{stream}/segments", policy.RoleRead, http.HandlerFunc(s.handleSegments))
	s.route("POST /v1/streams/{stream}/segments/{base}/offload", policy.RoleAdmin, http.HandlerFunc(s.handleOffload))
	s.route("POST /v1/streams/{stream}/seal", policy.RoleAdmin, http.HandlerFunc(s.handleSeal))
	s.route("POST /v1/migrate", policy.RoleAdmin, http.HandlerFunc(s.handleMigrate))
	s.route("GET /v1/streams/{stream}/explain", policy.RoleAdmin, http.HandlerFunc(s.handleExplain))
	s.route("POST /v1/verify", policy.RoleAdmin, http.HandlerFunc(s.handleVerify))
	s.route("GET /v1/status", policy.RoleRead, http.HandlerFunc(s.handleStatus))
	s.route("GET /v1/cluster", policy.RoleRead, http.HandlerFunc(s.handleCluster))
	s.route("GET /v1/streams/{stream}/table", policy.RoleRead, http.HandlerFunc(s.handleTable))
	s.route("POST /v1/tables/sync", policy.RoleAdmin, http.HandlerFunc(s.handleTablesSync))
	s.route("GET /healthz", roleAnyone, http.HandlerFunc(s.handleHealth))
	s.route("GET /metrics", policy.RoleRead, s.metricsHandler())
	return s
}

// ServeHTTP routes r, answering unknown routes and methods as JSON errors
// and any panic as a 500 JSON error rather than a dead process.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	h, pattern := s.mux.Handler(r)
	if !cleanPath(r.URL.Path) {
		// The mux would redirect to the cleaned path, which may be another
		// route ("/v1/streams/../records" is "/v1/records"): a request the
		// client did not make. Refuse it instead.
		h, pattern = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusBadRequest, api.CodeInvalidPath, fmt.Sprintf("path %q is not clean: tierd does not resolve \".\", \"..\" or empty segments", r.URL.Path))
		}), ""
	}
	route := pattern
	if pattern == "" {
		route = "unmatched"
	}
	defer func() {
		if s.metrics != nil {
			s.metrics.observe(route, sw.status, time.Since(start))
		}
	}()
	defer s.recoverPanic(sw, r)
	if !s.authorize(sw, r, pattern) {
		return
	}
	if pattern == "" {
		s.serveUnmatched(sw, r, h)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// cleanPath reports whether p is absolute and has no ".", ".." or empty
// segments (a trailing slash is allowed), as the mux's own cleaning would
// leave it.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c == p
}

// recoverPanic turns a handler panic into a logged 500. A response already
// under way cannot change its status, so that connection is aborted instead,
// which a client sees as a truncated body rather than a clean end.
func (s *Server) recoverPanic(w *statusWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.log.Error("server: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	if w.wrote {
		panic(http.ErrAbortHandler)
	}
	writeError(w, http.StatusInternalServerError, api.CodeInternal, "internal error")
}

// serveUnmatched runs the mux's own answer (404, 405 or a redirect) into a
// buffer and replaces a 404 or 405 with its JSON equivalent.
func (s *Server) serveUnmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &bufferedWriter{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
	default:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body.Bytes())
	}
}

// handleHealth answers whether the node takes writes: 200 {"status":"ok"},
// or, while storage keeps appends from being made durable, 503 naming the
// cause (docs/api.md, "Health").
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := s.eng.WriteHealth()
	if h.Cause == "" {
		writeJSON(w, http.StatusOK, api.HealthOK{Status: "ok"})
		return
	}
	code, retry := api.CodeStorageUnavailable, true
	switch h.Cause {
	case tiers.CauseDiskFull:
		code = api.CodeStorageFull
	case tiers.CauseWALFailed:
		code, retry = api.CodeStorageFailed, false
	}
	if retry {
		w.Header().Set("Retry-After", strconv.Itoa(storageRetryAfterSeconds))
	}
	writeJSON(w, http.StatusServiceUnavailable, api.Health{
		Status: "unavailable", Cause: h.Cause, Since: api.UTC(h.Since), Sticky: h.Sticky(),
		Error: api.Error{Code: code, Message: h.Err.Error()},
	})
}

func (s *Server) handleStreams(w http.ResponseWriter, r *http.Request) {
	infos, err := s.eng.Streams(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.StreamList{Streams: make([]api.Stream, len(infos))}
	for i := range infos {
		out.Streams[i] = toStreamOut(&infos[i])
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleSegments(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := tiers.ValidateStreamName(stream); err != nil {
		s.fail(w, r, err)
		return
	}
	segs, err := s.eng.Segments(r.Context(), stream)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]api.Segment, len(segs))
	for i := range segs {
		out[i] = toSegmentOut(&segs[i])
	}
	writeJSON(w, http.StatusOK, out)
}

// handleOffload moves one sealed segment to the cold tier now
// (?keep_warm=true copies it instead) and answers the segment as the
// segments listing shows it.
func (s *Server) handleOffload(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := tiers.ValidateStreamName(stream); err != nil {
		s.fail(w, r, err)
		return
	}
	base, err := strconv.ParseUint(r.PathValue("base"), 10, 64)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: segment base %q is not an offset", errInvalidParameter, r.PathValue("base")))
		return
	}
	keepWarm := false
	for name, vals := range r.URL.Query() {
		if name != "keep_warm" || len(vals) != 1 {
			s.fail(w, r, fmt.Errorf("%w: %q (the only parameter is keep_warm, once)", errInvalidParameter, name))
			return
		}
		if keepWarm, err = strconv.ParseBool(vals[0]); err != nil {
			s.fail(w, r, fmt.Errorf("%w: keep_warm=%q is not true or false", errInvalidParameter, vals[0]))
			return
		}
	}
	ctx, stop := s.untilShutdown(r)
	defer stop()
	m, err := s.eng.Offload(ctx, stream, base, keepWarm)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Described as the listing describes it (resident in memory too: hot).
	info := s.eng.Describe(m)
	writeJSON(w, http.StatusOK, toSegmentOut(&info))
}

func (s *Server) handleAppend(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := tiers.ValidateStreamName(stream); err != nil {
		s.fail(w, r, err)
		return
	}
	prod, err := parseProducer(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	parse := ParseNDJSON
	if isBatchBody(r.Header.Get("Content-Type")) {
		parse = ParseBatch
	}
	recs, err := parse(body, ParseOptions{
		MaxRecordBytes: s.opts.MaxRecordBytes,
		MaxRecords:     s.opts.MaxBatchRecords,
		IngestTS:       s.opts.Now().UnixNano(),
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if prod.Seq != 0 {
		// Echoed on every answer, so a client that cannot read an answer's
		// body still knows this server deduplicates its retry.
		w.Header().Set(api.HeaderProducerSeq, strconv.FormatUint(prod.Seq, 10))
	}
	res, err := s.eng.AppendAs(r.Context(), stream, prod, recs)
	if err == nil {
		err = failpoint.Inject(failpoint.AppendAfterDurable) // the answer lost
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.AppendResult{Stream: stream, FirstOffset: res.First, LastOffset: res.Last, Count: res.Count, Duplicate: res.Duplicate})
}

// handleRead streams the matching records as NDJSON while the engine yields
// them. Errors before the first record get a proper status; an error after
// it can only end the body, as one last line {"error":{…}} (docs/api.md).
func (s *Server) handleRead(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := tiers.ValidateStreamName(stream); err != nil {
		s.fail(w, r, err)
		return
	}
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: %v", errInvalidParameter, err))
		return
	}
	wait, err := takeWait(params)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: %w", errInvalidParameter, err))
		return
	}
	q, err := parseQuery(params)
	if err != nil {
		if !errors.Is(err, ErrInvalidTS) {
			err = fmt.Errorf("%w: %w", errInvalidParameter, err)
		}
		s.fail(w, r, err)
		return
	}
	if wait > 0 {
		s.waitFor(r.Context(), stream, q.From, wait)
	}
	if err := r.Context().Err(); err != nil {
		// The client went away, while the read waited (tail -f and
		// Ctrl-C) or before: nobody reads the answer, and fail logs it as
		// a debug line.
		s.fail(w, r, err)
		return
	}

	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var (
		out       api.Record
		scratch   bytes.Buffer
		started   bool
		n         int
		lastFlush = time.Now()
	)
	begin := func() {
		w.Header().Set("Content-Type", api.MediaNDJSON)
		w.WriteHeader(http.StatusOK)
		started = true
	}
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		lastFlush = time.Now()
		return rc.Flush()
	}
	for it, err := range s.eng.Read(r.Context(), stream, q) {
		if err != nil {
			if !started {
				s.fail(w, r, err)
				return
			}
			line, _ := json.Marshal(s.errorLine(r, err))
			bw.Write(line)
			bw.WriteByte('\n')
			flush()
			return
		}
		if !started {
			begin()
		}
		toRecordOut(&out, &it, &scratch)
		if err := enc.Encode(&out); err != nil {
			return // the client went away; leaving the loop stops the engine's iterator
		}
		n++
		if n%flushRecords == 0 || time.Since(lastFlush) >= flushInterval {
			if err := flush(); err != nil {
				return
			}
		}
		if n >= q.Limit {
			break
		}
	}
	if !started {
		begin()
	}
	flush()
}

// errInvalidParameter marks a bad query parameter.
var errInvalidParameter = errors.New("server: invalid parameter")

// classify maps an error to its HTTP status and API code. Every error the
// parser or the engine returns for bad input maps to a 4xx.
func classify(err error) (int, string) {
	var mbe *http.MaxBytesError
	var ce *tiers.CorruptionError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge
	case errors.Is(err, ErrBodyRead):
		return http.StatusBadRequest, api.CodeInvalidBody
	case errors.Is(err, ErrEmptyBatch):
		return http.StatusBadRequest, api.CodeEmptyBatch
	case errors.Is(err, ErrBatchTooLarge), errors.Is(err, tiers.ErrBatchTooLarge):
		return http.StatusRequestEntityTooLarge, api.CodeBatchTooLarge
	case errors.Is(err, tiers.ErrInvalidBatch):
		return http.StatusBadRequest, api.CodeInvalidBatch
	case errors.Is(err, ErrInvalidJSON):
		return http.StatusBadRequest, api.CodeInvalidJSON
	case errors.Is(err, ErrInvalidTS):
		return http.StatusBadRequest, api.CodeInvalidTS
	case errors.Is(err, ErrInvalidBase64):
		return http.StatusBadRequest, "invalid_base64"
	case errors.Is(err, errInvalidProducer):
		return http.StatusBadRequest, api.CodeInvalidProducer
	case errors.Is(err, tiers.ErrProducerSequence):
		return http.StatusConflict, api.CodeProducerSequence
	case errors.Is(err, errInvalidParameter):
		return http.StatusBadRequest, api.CodeInvalidParameter
	case errors.Is(err, tiers.ErrInvalidStreamName):
		return http.StatusBadRequest, api.CodeInvalidStreamName
	case errors.Is(err, tiers.ErrKeyTooLarge):
		return http.StatusRequestEntityTooLarge, api.CodeKeyTooLarge
	case errors.Is(err, tiers.ErrRecordTooLarge):
		return http.StatusRequestEntityTooLarge, api.CodeRecordTooLarge
	case errors.Is(err, tiers.ErrBatchOverBudget):
		return http.StatusRequestEntityTooLarge, api.CodeBatchOverBudget
	case errors.Is(err, tiers.ErrInvalidRecord):
		return http.StatusBadRequest, api.CodeInvalidRecord
	case errors.Is(err, tiers.ErrStreamNotFound):
		return http.StatusNotFound, api.CodeStreamNotFound
	case errors.Is(err, tiers.ErrExpired):
		return http.StatusGone, api.CodeExpired
	case errors.Is(err, tiers.ErrSegmentNotFound):
		return http.StatusNotFound, api.CodeSegmentNotFound
	case errors.Is(err, engine.ErrNotPersisted):
		return http.StatusConflict, api.CodeSegmentNotPersisted
	case errors.Is(err, errNoMigrator):
		return http.StatusConflict, api.CodeMigratorDisabled
	case errors.Is(err, engine.ErrNoColdTier):
		return http.StatusConflict, api.CodeNoColdTier
	case errors.Is(err, cold.ErrStoreUnavailable):
		return http.StatusServiceUnavailable, api.CodeColdStoreUnavailable
	case errors.Is(err, tablesync.ErrNoTable):
		return http.StatusNotFound, api.CodeNoTable
	case errors.Is(err, tablesync.ErrDisabled):
		return http.StatusNotFound, api.CodeTablesDisabled
	case errors.Is(err, tablesync.ErrUnavailable):
		return http.StatusServiceUnavailable, api.CodeTablesUnavailable
	case errors.Is(err, tiers.ErrStorageUnavailable):
		// Before backpressure: memory full of what storage refuses is the
		// storage's condition, not a second's wait.
		if tiers.StorageCause(err) == tiers.CauseDiskFull {
			return http.StatusServiceUnavailable, api.CodeStorageFull
		}
		return http.StatusServiceUnavailable, api.CodeStorageUnavailable
	case errors.Is(err, tiers.ErrBackpressure):
		return http.StatusServiceUnavailable, api.CodeBackpressure
	case errors.Is(err, tiers.ErrOutcomeUnknown):
		return http.StatusServiceUnavailable, api.CodeOutcomeUnknown
	case errors.Is(err, tiers.ErrStorageFailed):
		return http.StatusServiceUnavailable, api.CodeStorageFailed
	case errors.Is(err, tiers.ErrClosed):
		return http.StatusServiceUnavailable, api.CodeShuttingDown
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, api.CodeCanceled
	case errors.Is(err, objstore.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		// A copy the catalog places is gone from its tier (deleted behind
		// tierd's back): data is missing, not a bug. verify lists them.
		return http.StatusInternalServerError, api.CodeSegmentMissing
	case errors.As(err, &ce):
		return http.StatusInternalServerError, api.CodeCorruption
	}
	return http.StatusInternalServerError, api.CodeInternal
}

// fail answers err as a JSON error.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	s.logFailure(r, status, code, err)
	switch code {
	case api.CodeBackpressure, api.CodeColdStoreUnavailable, api.CodeOutcomeUnknown, api.CodeTablesUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	case api.CodeStorageFull, api.CodeStorageUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(storageRetryAfterSeconds))
	}
	writeError(w, status, code, message(r, code, err))
}

// message is err's text as the client reads it. A stream that does not
// exist is named: the engine's "stream not found" does not say which one
// the request was about.
func message(r *http.Request, code string, err error) string {
	msg := err.Error()
	if code != api.CodeStreamNotFound {
		return msg
	}
	name := r.PathValue("stream")
	if name == "" {
		name = r.URL.Query().Get("stream")
	}
	if name == "" || strings.HasSuffix(msg, ": "+name) || strings.Contains(msg, strconv.Quote(name)) {
		return msg
	}
	return fmt.Sprintf("stream %q: %s", name, msg)
}

// errorLine logs err and returns the error object that ends a streamed
// answer already under way (its status is sent: 200).
func (s *Server) errorLine(r *http.Request, err error) api.ErrorBody {
	status, code := classify(err)
	s.logFailure(r, status, code, err)
	return api.ErrorBody{Error: &api.Error{Code: code, Message: message(r, code, err)}}
}

// logFailure logs server-side failures loudly and client mistakes quietly.
// A request whose own client went away (Ctrl-C of tierctl tail -f, a read
// closed early) ends with its context's error: nothing failed on this
// side, so that is a debug line, without the status nobody received.
func (s *Server) logFailure(r *http.Request, status int, code string, err error) {
	if clientGone(r, err) {
		s.log.Debug("server: client went away before the answer", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelError
		if status == http.StatusServiceUnavailable {
			level = slog.LevelWarn
		}
	}
	s.log.Log(r.Context(), level, "server: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "err", err)
}

// clientGone reports whether err ended r because r's own client went away
// (its context is done, and the error is that context's), not because of
// the server: a shutdown or a deadline of the server's own ends other
// contexts, and its 503 is still a warning.
func clientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.ErrorBody{Error: &api.Error{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // reasons say ">=", and nobody embeds this in HTML
	err := enc.Encode(v)
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if err != nil { // only a type the server defines can get here
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding the response failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// statusWriter remembers the status sent, for metrics and for knowing
// whether a panic can still be answered.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's Flusher.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufferedWriter holds the mux's small built-in answers so they can be
// rewritten as JSON.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedWriter) Header() http.Header { return w.header }

func (w *bufferedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *bufferedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
