package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nanokms/nanokms/internal/pgerr"
)

func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code}) }
	for _, tc := range []struct {
		name               string
		err                error
		unavailable, retry bool
	}{
		{"nil", nil, false, false},
		{"admin shutdown", pg("57P01"), true, false},
		{"connection failure", pg("08006"), true, false},
		{"too many connections", pg("53300"), true, false},
		{"idle in transaction timeout", pg("25P03"), true, false},
		{"serialization failure", pg("40001"), false, true},
		{"deadlock", pg("40P01"), false, true},
		{"unique violation", pg("23505"), false, true},
		{"check violation", pg("23514"), false, false},
		{"syntax error", pg("42601"), false, false},
		{"connection closed", fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true, false},
		{"other", errors.New("record does not decode"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pgerr.Unavailable(tc.err); got != tc.unavailable {
				t.Errorf("Unavailable = %v, want %v", got, tc.unavailable)
			}
			if got := pgerr.Retry(tc.err); got != tc.retry {
				t.Errorf("Retry = %v, want %v", got, tc.retry)
			}
		})
	}
	if got := pgerr.Code(pg("23514")); got != "23514" {
		t.Errorf("Code = %q", got)
	}
}
