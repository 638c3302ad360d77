// Package pgerr classifies the errors of PostgreSQL operations (made with
// pgx) for the stores that keep their state there: whether the database
// was lost or not reached (Unavailable), and whether a transaction that
// failed may simply be tried again (Retry).
//
// It only looks at errors: it never connects, logs or retries, and it
// never returns an error's text (which may quote a connection string).
package pgerr

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err says the database was not reached or
// was lost: a failure to connect, a connection closed, broken or timed
// out, or a server error of that kind (SQLSTATE classes 08 connection
// exception, 53 insufficient resources, 57 operator intervention, and
// 25P03 idle_in_transaction_session_timeout). Anything else (a record
// that does not decode, a statement the server refused, a constraint
// violated) is not.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		var ce *pgconn.ConnectError
		var ne net.Error
		return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
			errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
			errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
	}
	switch pe.Code[:min(2, len(pe.Code))] {
	case "08", // connection exception
		"53", // insufficient resources (too many connections, out of memory, disk full)
		"57": // operator intervention: admin or crash shutdown, cannot connect now, query canceled
		return true
	}
	return pe.Code == "25P03" // idle_in_transaction_session_timeout
}

// Retry reports whether a transaction that failed with err may be tried
// again as it is: it failed to serialise (40001), deadlocked (40P01), or
// met a concurrent insert of the same key (23505), which its reads, tried
// again, see.
func Retry(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505":
		return true
	}
	return false
}

// Code returns the SQLSTATE of a server error in err's chain, or "".
func Code(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
