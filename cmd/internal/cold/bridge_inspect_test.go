package cold

import (
	"errors"
	"strings"
	"testing"
)

// The reason of a quarantined file comes from the .reason file's fields,
// never from cutting an error's text.
func TestParseReasonFile(t *testing.T) {
	for _, tc := range []struct {
		name, data        string
		readErr           error
		wantReason, wantT string
	}{
		{"frame check with detail", "file: a.request.nkb\ncode: 1\nreason: truncated\ndetail: payload says 567 bytes, 257 present\nerror: x: frame refused: truncated: payload says 567 bytes, 257 present\nquarantined: 2026-11-25T10:31:00Z\n",
			nil, "truncated: payload says 567 bytes, 257 present", "2026-11-25T10:31:00Z"},
		{"frame check without detail", "file: a.request.nkb\ncode: 7\nreason: checksum mismatch\nerror: x: frame refused: checksum mismatch\nquarantined: 2026-11-25T10:31:00Z\n",
			nil, "x: frame refused: checksum mismatch", "2026-11-25T10:31:00Z"},
		{"consumer's reason", "file: a.answer.nkb\nreason: the answer does not verify\nquarantined: 2026-11-25T10:32:00Z\n",
			nil, "the answer does not verify", "2026-11-25T10:32:00Z"},
		{"lines without a key", "garbage\n\nreason: kept\n", nil, "kept", ""},
		{"no file", "", nil, "(no .reason file)", ""},
		{"unreadable", "", errors.New("permission denied"), "(the .reason file cannot be read: permission denied)", ""},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var data []byte
			if tc.data != "" {
				data = []byte(tc.data)
			}
			reason, when := parseReasonFile(data, tc.readErr)
			if reason != tc.wantReason || when != tc.wantT {
				t.Fatalf("parseReasonFile = %q, %q; want %q, %q", reason, when, tc.wantReason, tc.wantT)
			}
		})
	}
}
