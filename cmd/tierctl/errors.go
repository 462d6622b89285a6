package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/tierd/tierd/client"
)

// Errors for people: every message names what it is about (the stream,
// the flag, the server's address) and, where the operator can do
// something, what.

// errInterrupted ends a verb stopped by Ctrl-C (or SIGTERM); run exits
// 130 without another message, the verb having said what it left done.
var errInterrupted = errors.New("interrupted")

// unreachableError is a request that never reached the server: the
// connection could not be made.
type unreachableError struct {
	addr, source string // the address and where it came from: --addr, TIERD_ADDR or the default
	cause        string // "connection refused", "no such host", …
	err          error
}

func (e *unreachableError) Error() string {
	return e.short() + "; is tierd running there? Set the address with --addr URL or TIERD_ADDR."
}

// short is the error without the hint, for a line that repeats it.
func (e *unreachableError) short() string {
	return fmt.Sprintf("cannot reach tierd at %s (from %s): %s", e.addr, e.source, e.cause)
}

func (e *unreachableError) Unwrap() error { return e.err }

// lostError is a connection to the server that broke before its answer
// was whole.
type lostError struct {
	addr, cause string
	err         error
}

func (e *lostError) Error() string {
	return fmt.Sprintf("lost the connection to tierd at %s: %s", e.addr, e.cause)
}

func (e *lostError) Unwrap() error { return e.err }

// dialFailed reports whether err is a failed connection attempt: the
// request was never sent, so the server did nothing with it.
func dialFailed(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// netCause says in a few words why a connection failed or broke.
func netCause(err error) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return fmt.Sprintf("no such host %q", dns.Name)
		}
		return "cannot resolve " + dns.Name + ": " + dns.Err
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection closed before the answer was whole"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	}
	// The innermost message, without Go's "dial tcp …:" prefixes.
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// explain turns the client's transport errors into ones that name the
// server's address; API errors and everything else pass unchanged.
func (a *app) explain(err error) error {
	if err == nil {
		return nil
	}
	var ae *client.APIError
	var ue *unreachableError
	var le *lostError
	if errors.As(err, &ae) || errors.As(err, &ue) || errors.As(err, &le) || errors.Is(err, context.Canceled) {
		return err
	}
	var uerr *url.Error
	switch {
	case dialFailed(err):
		source := a.addrSource
		if source == "" {
			source = "the default"
		}
		return &unreachableError{addr: a.addr, source: source, cause: netCause(err), err: err}
	case errors.As(err, &uerr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return &lostError{addr: a.addr, cause: netCause(err), err: err}
	}
	return err
}

// subject is what an error is about: a stream named by an argument
// (flag empty) or by a flag.
type subject struct {
	flag, stream string
}

func (s subject) String() string {
	if s.flag != "" {
		return fmt.Sprintf("%s %q", s.flag, s.stream)
	}
	return fmt.Sprintf("stream %q", s.stream)
}

// about makes err name its subject: a missing stream says which one, on
// which server, and how to list them; any other refusal whose message
// does not name the stream gets it in front. Transport errors name the
// address (explain).
func (a *app) about(s subject, err error) error {
	err = a.explain(err)
	var ae *client.APIError
	var ue *unreachableError
	var le *lostError
	var use usageError
	switch {
	case err == nil, errors.As(err, &ue), errors.As(err, &le), errors.As(err, &use), errors.Is(err, context.Canceled), errors.Is(err, errInterrupted):
		return err
	case !errors.As(err, &ae):
		return fmt.Errorf("%s: %w", s, err)
	}
	e := *ae
	switch {
	case e.Code == "stream_not_found":
		e.Message = fmt.Sprintf("no stream %q on %s (tierctl streams lists them)", s.stream, a.addr)
		if s.flag != "" {
			e.Message = s.flag + ": " + e.Message
		}
	case !strings.Contains(e.Message, s.stream):
		e.Message = s.String() + ": " + e.Message
	default:
		return err
	}
	return &e
}

// aboutFlag is about for a stream named by flag, when one was given
// (migrate --stream S); without one the error is about the server.
func (a *app) aboutFlag(flag, stream string, err error) error {
	if stream == "" {
		return a.explain(err)
	}
	return a.about(subject{flag: flag, stream: stream}, err)
}
