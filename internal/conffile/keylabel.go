package conffile

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxKeyLabelLen is the longest PKCS#11 key label (CKA_LABEL) the
// configuration files and `nanokms token tls-key` accept, in bytes.
const MaxKeyLabelLen = 64

// CheckKeyLabel returns "" if s is a valid label of a key on a token (1 to
// MaxKeyLabelLen bytes of printable UTF-8, no leading or trailing space),
// or else what is wrong.
func CheckKeyLabel(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxKeyLabelLen:
		return fmt.Sprintf("is longer than %d bytes", MaxKeyLabelLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return "must be printable UTF-8"
	case strings.TrimSpace(s) != s:
		return "must not start or end with a space"
	}
	return ""
}

// KeyLabel checks field, the label of a key on a token (see
// CheckKeyLabel), when it is set.
func (c *Checker) KeyLabel(field *string) { c.Check(field, CheckKeyLabel) }

// MaxTokenLabelLen is the size of a PKCS#11 token label (CK_TOKEN_INFO's
// label), in bytes.
const MaxTokenLabelLen = 32

// CheckTokenLabel returns "" if s fits in a token label (at most
// MaxTokenLabelLen bytes), or else what is wrong.
func CheckTokenLabel(s string) string {
	if len(s) > MaxTokenLabelLen {
		return fmt.Sprintf("%q is longer than the %d bytes of a token label", s, MaxTokenLabelLen)
	}
	return ""
}
