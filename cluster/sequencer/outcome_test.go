package sequencer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestOutcomeKnown: a failed COMMIT is "nothing written" only when the
// server answered it with an error or nothing was sent; a connection lost
// on the way is unknown.
func TestOutcomeKnown(t *testing.T) {
	for _, tc := range []struct {
		err   error
		known bool
	}{
		{&pgconn.PgError{Code: "40001"}, true},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "57P01"}), true},
		{pgx.ErrTxCommitRollback, true},
		{io.ErrUnexpectedEOF, false},
		{context.DeadlineExceeded, false},
		{errors.New("conn closed"), false},
	} {
		if got := outcomeKnown(tc.err); got != tc.known {
			t.Errorf("outcomeKnown(%v) = %v, want %v", tc.err, got, tc.known)
		}
	}
	if !retryable(fmt.Errorf("x: %w", &pgconn.PgError{Code: "40P01"})) || retryable(&pgconn.PgError{Code: "23505"}) {
		t.Error("retryable: a deadlock is retried, a unique violation is not")
	}
}
