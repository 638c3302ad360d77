package signer

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nanokms/nanokms/internal/keystore"
)

// Caller input is bounded and made valid UTF-8 before it is logged,
// answered or recorded: an audit record is a protobuf message whose
// strings must be UTF-8 (a record that does not encode is a decision
// that cannot be recorded), and a log line must not carry what a caller
// chose to send in full.
const (
	// maxQuoted is how many bytes of a caller's string quoteInput shows.
	maxQuoted = 64
	// maxDetailLen bounds a refusal's detail, as answered and recorded.
	maxDetailLen = 1024
)

// quoteInput returns a caller's string for a log line or a refusal's
// detail: at most its first maxQuoted bytes (cut on a character boundary),
// as a quoted Go string literal (so control characters and bytes that are
// not UTF-8 are escaped and the result is printable UTF-8), followed by
// its full length when it was cut. Every place that logs or quotes caller
// input uses it.
func quoteInput(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return strconv.Quote(s[:cut]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// boundedText returns s as valid UTF-8 of at most max bytes: bytes that
// are not UTF-8 become U+FFFD, and a longer string is cut on a character
// boundary. A valid string within max is returned unchanged.
func boundedText(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) {
		return s
	}
	if len(s) > max {
		cut := max
		for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
			cut--
		}
		s = s[:cut]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	for len(s) > max { // a replacement can be longer than the bytes it replaced
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// checkWallet refuses a wallet label the token would never hold (the
// key store's rule, keystore.CheckLabel: 1 to keystore.MaxLabelLen bytes of UTF-8 without control
// characters), and one holding U+FFFD, which is what the gRPC server
// makes of bytes that are not UTF-8 (see lenientCodec).
func checkWallet(label string) *Refusal {
	if label == "" {
		return refuseField(rMalformed, "wallet", "required")
	}
	if err := keystore.CheckLabel(label); err != nil {
		reason := err.Error()
		if le := (*keystore.LabelError)(nil); errors.As(err, &le) {
			reason = le.Reason
		}
		return refuseField(rMalformed, "wallet", "%s (got %s)", reason, quoteInput(label))
	}
	if strings.ContainsRune(label, utf8.RuneError) {
		return refuseField(rMalformed, "wallet", "not UTF-8 (it holds U+FFFD, the replacement for bytes that are not) (got %s)", quoteInput(label))
	}
	return nil
}
