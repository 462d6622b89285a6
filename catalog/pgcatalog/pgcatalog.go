// Package pgcatalog is the catalog of cluster mode: catalog.Store kept in
// PostgreSQL (tables catalog_streams, catalog_segments, catalog_intents and
// catalog_failures, migration internal/pgschema/migrations/0002_catalog.sql),
// shared by every node. It passes the same conformance suite as the bbolt
// Catalog (catalog/catalogtest) and enforces the same rules (catalog's
// CheckSegment, CheckIntent, SameRecords).
//
// Transactions. Every read is one SQL statement, so it sees one snapshot
// (READ COMMITTED gives each statement its own). Every write is one READ
// COMMITTED transaction that locks, before it reads what it decides on,
// the rows its decision depends on, always in the order stream row →
// segment rows → intent row → failure row, so that concurrent writers on
// several nodes serialise where they must and cannot deadlock: whatever
// adds, replaces or forgets a segment, or moves a watermark, holds its
// stream's row FOR UPDATE. A serialization failure, a deadlock or a lost
// race on an insert is retried inside the call (a few times, with a short
// backoff); so is a connection lost before anything was sent for commit.
// Functions passed to UpdateSegment, CommitMove and Tombstone may therefore
// run more than once; only the run of the committed attempt counts.
//
// Outages. A call while PostgreSQL is unreachable fails, within its
// context's deadline, with an error wrapping tiers.ErrStorageUnavailable
// (nothing was written). A connection lost while COMMIT was under way is
// resolved by asking the server what became of the transaction
// (txid_status): committed is success, aborted is retried; only when the
// server cannot tell before the deadline does the call fail with
// ErrCommitUnknown (the change may or may not be durable).
//
// Damage. Every row is checked when read: a value no build of tierd writes
// (an unknown placement, last < base, a count that is not dense, ...) is a
// *tiers.CorruptionError wrapping catalog.ErrDamaged, never a guess.
package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/internal/pgschema"
	"github.com/tierd/tierd/tiers"
)

// ErrCommitUnknown reports a write whose COMMIT was sent but not answered
// (the connection was lost) and whose fate the server could not tell
// before the call's deadline: it may or may not have been committed. A
// call first asks the server (txid_status) and answers success, or retries
// an aborted commit, when it can. The catalog's writes are idempotent
// steps of protocols that retry (the move protocol's intents, the
// compactor's jobs), so the caller retries.
var ErrCommitUnknown = fmt.Errorf("pgcatalog: connection lost during commit: %w", tiers.ErrOutcomeUnknown)

// DefaultCallTimeout bounds a call whose context has no deadline, so that
// an unanswering server cannot hold a caller forever.
const DefaultCallTimeout = 30 * time.Second

// maxAttempts bounds the retries of a call that failed for a reason a
// retry cures (serialization failure, deadlock, a lost insert race, a dead
// pooled connection).
const maxAttempts = 5

// maxOffset is the highest offset a bigint column holds; a segment's Last
// must stay below it so that its stream's next offset fits too.
const maxOffset = math.MaxInt64

// Catalog is a catalog.Store in PostgreSQL. Its methods are safe for
// concurrent use, by any number of Catalogs on any number of nodes sharing
// the database.
type Catalog struct {
	pool    *pgxpool.Pool
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	mu struct {
		sync.Mutex
		closed bool
	}
	// calls counts the calls in flight, which Close waits for, so that
	// nothing of this Catalog uses the pool once Close returned.
	calls sync.WaitGroup
}

var _ catalog.Store = (*Catalog)(nil)

// Options configures OpenWith. The zero value is usable.
type Options struct {
	// Logger receives corruption reports; nil discards.
	Logger *slog.Logger
	// Registerer receives the catalog's metrics (the bbolt catalog's
	// tierd_catalog_ops_total and tierd_catalog_op_duration_seconds, and
	// tierd_catalog_retries_total); nil registers none.
	Registerer prometheus.Registerer
	// Now stamps streams' CreatedAt, intents' Started and failures' At;
	// nil means time.Now.
	Now func() time.Time
}

// Open is OpenWith with the zero Options.
func Open(ctx context.Context, pool *pgxpool.Pool) (*Catalog, error) {
	return OpenWith(ctx, pool, Options{})
}

// OpenWith migrates the database behind pool to the newest schema this build
// knows (pgschema.Migrate: a database of a newer tierd is refused with an
// error wrapping pgschema.ErrSchemaNewer) and returns a Catalog serving it.
// The pool stays the caller's: Close does not close it.
func OpenWith(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Catalog, error) {
	if pool == nil {
		return nil, errors.New("pgcatalog: open: nil pool")
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	if _, err := pgschema.Migrate(ctx, pool); err != nil {
		if isConnError(err) {
			return nil, fmt.Errorf("pgcatalog: open: %w: %w", tiers.ErrStorageUnavailable, err)
		}
		return nil, fmt.Errorf("pgcatalog: open: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Catalog{pool: pool, now: opts.Now, log: opts.Logger, metrics: newMetrics(opts.Registerer)}, nil
}

// Close stops the Catalog: it waits for the calls in flight, and every
// later call fails with an error wrapping tiers.ErrClosed. It does not
// close the pool, which belongs to the caller. Closing twice is no error.
func (c *Catalog) Close() error {
	c.mu.Lock()
	c.mu.closed = true
	c.mu.Unlock()
	c.calls.Wait()
	return nil
}

// enter admits one call: a done context fails it with ctx's error, a
// closed Catalog with tiers.ErrClosed. The caller calls done when finished.
func (c *Catalog) enter(ctx context.Context, op string) (done func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgcatalog: %s: %w", op, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, fmt.Errorf("pgcatalog: %s: %w", op, tiers.ErrClosed)
	}
	c.calls.Add(1)
	return c.calls.Done, nil
}

// withDeadline gives ctx DefaultCallTimeout unless it has a deadline.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultCallTimeout)
}

// stamp is the current time as the catalog stores it.
func (c *Catalog) stamp() time.Time { return pgTime(c.now()) }

// pgTime is t as a timestamptz keeps it: to the microsecond, in UTC.
// Values are truncated before they are checked and stored, so that a call
// answers what a later read returns.
func pgTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Microsecond).UTC()
}

// read runs fn, one statement or several that need no common snapshot,
// against the pool, retrying what a retry cures.
func (c *Catalog) read(ctx context.Context, op string, fn func(ctx context.Context, q *pgxpool.Pool) error) error {
	done, err := c.enter(ctx, op)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	start := time.Now()
	err = c.retry(ctx, op, func() error { return fn(ctx, c.pool) })
	c.observe(op, start, err)
	return err
}

// write runs fn in one READ COMMITTED transaction and commits it, retrying
// what a retry cures. fn's own errors (refusals) roll back and are returned
// as they are.
func (c *Catalog) write(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	done, err := c.enter(ctx, op)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	start := time.Now()
	err = c.retry(ctx, op, func() error { return c.writeOnce(ctx, fn) })
	c.observe(op, start, err)
	return err
}

// observe accounts a finished call and logs the damage it met.
func (c *Catalog) observe(op string, start time.Time, err error) {
	c.metrics.observe(op, start, err)
	var ce *tiers.CorruptionError
	if errors.As(err, &ce) {
		c.log.Error("catalog corruption", "op", op, "err", err)
	}
}

// inDoubt marks a COMMIT that was sent and not answered; xid is the
// transaction's id, whose fate txid_status tells once the server answers.
type inDoubt struct {
	err error
	xid int64
}

func (e *inDoubt) Error() string { return e.err.Error() }
func (e *inDoubt) Unwrap() error { return e.err }

func (c *Catalog) writeOnce(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	// The transaction's id, so that a COMMIT left unanswered can be
	// resolved (txid_status) rather than reported as unknown.
	var xid int64
	if err := tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&xid); err != nil {
		rollback(ctx, tx)
		return err
	}
	if err := fn(ctx, tx); err != nil {
		rollback(ctx, tx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) || errors.Is(err, pgx.ErrTxCommitRollback) {
			return err // the server refused it: nothing was written
		}
		return &inDoubt{err: err, xid: xid}
	}
	return nil
}

// commitAborted is a COMMIT without answer that the server rolled back:
// nothing was written, and the call is retried.
type commitAborted struct{ err error }

func (e *commitAborted) Error() string { return "commit lost and rolled back: " + e.err.Error() }
func (e *commitAborted) Unwrap() error { return e.err }

// retryReason names why a call is retried, for the retries metric.
func retryReason(err error) string {
	var ca *commitAborted
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &ca):
		return "commit_lost"
	case errors.As(err, &pgErr) && !isConnError(err):
		return "conflict"
	}
	return "connection"
}

// Fates of a transaction whose COMMIT went unanswered.
const (
	fateUnknown = iota
	fateCommitted
	fateAborted
)

// resolve asks the server, on another connection, what became of
// transaction xid, until it knows or ctx is done: a server that restarted
// answers too (a commit it did not make durable is aborted).
func (c *Catalog) resolve(ctx context.Context, xid int64) int {
	wait := 20 * time.Millisecond
	for {
		var status *string
		err := c.pool.QueryRow(ctx, `SELECT txid_status($1)`, xid).Scan(&status)
		switch {
		case err == nil && status == nil:
			return fateUnknown // too old for the server to remember
		case err == nil && *status == "committed":
			return fateCommitted
		case err == nil && *status == "aborted":
			return fateAborted
		}
		// "in progress" (the server has not seen the connection go yet), or
		// no answer: ask again.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fateUnknown
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// rollback ends tx after a failure; a dead connection rolls it back on the
// server by itself, so a failure here changes nothing.
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// retry runs attempt until it succeeds, fails for a reason a retry does
// not cure, or maxAttempts or the context run out, and wraps the failure.
func (c *Catalog) retry(ctx context.Context, op string, attempt func() error) error {
	backoff := 10 * time.Millisecond
	for n := 1; ; n++ {
		err := attempt()
		var d *inDoubt
		if errors.As(err, &d) {
			switch c.resolve(ctx, d.xid) {
			case fateCommitted:
				return nil
			case fateAborted:
				// Nothing was written: as a connection lost before COMMIT.
				err = &commitAborted{err: d.err}
			}
		}
		if err == nil {
			return nil
		}
		if n >= maxAttempts || ctx.Err() != nil || !retryable(err) {
			return wrap(ctx, op, err)
		}
		c.metrics.retried(op, retryReason(err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return wrap(ctx, op, err)
		case <-t.C:
		}
		backoff *= 2
	}
}

// SQLSTATE codes the catalog tells apart.
const (
	codeSerialization = "40001"
	codeDeadlock      = "40P01"
	codeUnique        = "23505"
)

// retryable reports whether a retry of the whole call may cure err: a
// conflict with a concurrent transaction, or a connection lost before
// anything was sent for commit.
func retryable(err error) bool {
	var d *inDoubt
	if errors.As(err, &d) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeSerialization, codeDeadlock, codeUnique:
			return true
		}
	}
	return isConnError(err)
}

// isConnError reports whether err says PostgreSQL could not be reached or
// the connection broke, rather than that the server refused a statement.
func isConnError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01..57P03: the server is
		// shutting down, crashed or not yet accepting connections.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// wrap turns a failed call's error into what the caller checks: refusals
// and corruption as they are; a done context wrapping ctx.Err(); an
// unknown commit wrapping ErrCommitUnknown; an unreachable server wrapping
// tiers.ErrStorageUnavailable (nothing written); any other error of the
// server named with op.
func wrap(ctx context.Context, op string, err error) error {
	var d *inDoubt
	var pgErr *pgconn.PgError
	var connectErr *pgconn.ConnectError
	switch {
	case errors.As(err, &d) && ctx.Err() != nil:
		// The deadline passed before the server could tell.
		return fmt.Errorf("pgcatalog: %s: %w: %w: %w", op, ErrCommitUnknown, ctx.Err(), d.err)
	case errors.As(err, &d):
		return fmt.Errorf("pgcatalog: %s: %w: %w", op, ErrCommitUnknown, d.err)
	case !isConnError(err) && !errors.As(err, &pgErr):
		return err // a refusal, corruption, or the context's own error
	case ctx.Err() != nil && errors.As(err, &connectErr):
		// The deadline ran out while the server could not be reached:
		// an outage, nothing written.
		return fmt.Errorf("pgcatalog: %s: %w: %w: %w", op, tiers.ErrStorageUnavailable, ctx.Err(), err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return fmt.Errorf("pgcatalog: %s: %w", op, err)
	case ctx.Err() != nil:
		return fmt.Errorf("pgcatalog: %s: %w: %w", op, ctx.Err(), err)
	case isConnError(err):
		return fmt.Errorf("pgcatalog: %s: %w: %w", op, tiers.ErrStorageUnavailable, err)
	}
	return fmt.Errorf("pgcatalog: %s: %w", op, err)
}

// damaged is the corruption error of a row of table that no build of
// tierd writes.
func damaged(table, key string, err error) error {
	return &tiers.CorruptionError{
		Path:   fmt.Sprintf("postgresql %s %s", table, key),
		Offset: -1,
		Err:    fmt.Errorf("%w: %w", catalog.ErrDamaged, err),
	}
}

// segKey names a segment row in errors.
func segKey(stream string, base uint64) string { return fmt.Sprintf("(%s, %d)", stream, base) }
