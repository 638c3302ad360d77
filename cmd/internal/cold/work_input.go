package cold

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nanokms/nanokms/nano"
)

// Errors of block sign's --work, wrapped by a *workError; branch with
// errors.Is.
var (
	// errWorkMalformed: the work input is not a nonce in a form read here.
	errWorkMalformed = errors.New("not a work nonce")
	// errWorkRoot: the work input names the root it was generated for,
	// and it is not the block's.
	errWorkRoot = errors.New("generated for another root")
	// errWorkBelow: the nonce's work value over the block's root is below
	// the block's threshold.
	errWorkBelow = errors.New("below the threshold")
)

// workError reports --work input that cannot go into the block. Field is
// the flag that gave it (--work or --work-file).
type workError struct {
	Field  string
	Err    error // errWorkMalformed, errWorkRoot or errWorkBelow
	Detail string
}

func (e *workError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Field, e.Err, e.Detail)
}

func (e *workError) Unwrap() error { return e.Err }

// workInput is a work nonce and, when its input said so, the root it was
// generated for.
type workInput struct {
	work    nano.Work
	root    nano.Hash
	hasRoot bool
}

// maxWorkInput bounds what parseWorkInput reads: work generate's output is
// a few hundred bytes.
const maxWorkInput = 4 << 10

// parseWorkInput reads a work nonce from what a work generator printed:
//
//   - 16 hex digits alone (surrounding white space aside);
//   - the text of 'nanokms work generate': a line "work: HEX" (other
//     lines, such as "work value: …", are ignored);
//   - a JSON object with "work" (16 hex digits) and optionally the root
//     it was generated for: "root" ('nanokms work generate --json') or
//     "hash" (a node's work_generate response); other members are
//     ignored, a member given twice is refused.
//
// Errors are *workError naming field and wrapping errWorkMalformed; they
// quote nothing of the input.
func parseWorkInput(field string, data []byte) (workInput, error) {
	bad := func(detail string) (workInput, error) {
		return workInput{}, &workError{Field: field, Err: errWorkMalformed, Detail: detail}
	}
	if len(data) > maxWorkInput {
		return bad(fmt.Sprintf("more than %d bytes", maxWorkInput))
	}
	text := strings.TrimSpace(string(data))
	switch {
	case text == "":
		return bad("empty")
	case text[0] == '{':
		return parseWorkJSON(field, []byte(text))
	case !strings.ContainsAny(text, " \t\r\n:"):
		w, err := nano.ParseWork(text)
		if err != nil {
			return bad("want 16 hex digits")
		}
		return workInput{work: w}, nil
	}
	var found *workInput
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "work" {
			continue
		}
		if found != nil {
			return bad(`more than one "work:" line`)
		}
		w, err := nano.ParseWork(strings.TrimSpace(v))
		if err != nil {
			return bad(`the "work:" line does not hold 16 hex digits`)
		}
		found = &workInput{work: w}
	}
	if found == nil {
		return bad(`want 16 hex digits, a "work:" line (nanokms work generate) or a JSON object with "work"`)
	}
	return *found, nil
}

// parseWorkJSON reads the JSON forms of parseWorkInput.
func parseWorkJSON(field string, data []byte) (workInput, error) {
	bad := func(detail string) (workInput, error) {
		return workInput{}, &workError{Field: field, Err: errWorkMalformed, Detail: detail}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the '{', checked by the caller
		return bad("malformed JSON")
	}
	members := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("malformed JSON")
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return bad("malformed JSON")
		}
		if key != "work" && key != "root" && key != "hash" {
			continue
		}
		if _, dup := members[key]; dup {
			return bad(fmt.Sprintf("%q given twice", key))
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return bad(fmt.Sprintf("%q is not a JSON string", key))
		}
		members[key] = s
	}
	if _, err := dec.Token(); err != nil {
		return bad("malformed JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("data after the JSON object")
	}
	ws, ok := members["work"]
	if !ok {
		return bad(`the JSON object has no "work"`)
	}
	w, err := nano.ParseWork(ws)
	if err != nil {
		return bad(`"work" is not 16 hex digits`)
	}
	in := workInput{work: w}
	for _, k := range []string{"root", "hash"} {
		s, ok := members[k]
		if !ok {
			continue
		}
		h, err := nano.ParseHash(s)
		if err != nil {
			return bad(fmt.Sprintf("%q is not 64 hex digits", k))
		}
		if in.hasRoot && h != in.root {
			return bad(`"root" and "hash" differ`)
		}
		in.root, in.hasRoot = h, true
	}
	return in, nil
}

// checkWork checks in against block b, whose work threshold is threshold
// (subtype names it in errors), and returns the nonce.
func checkWork(field string, in workInput, b *nano.StateBlock, threshold uint64, subtype string) (nano.Work, error) {
	root := b.Root()
	if in.hasRoot && in.root != root {
		return 0, &workError{Field: field, Err: errWorkRoot,
			Detail: fmt.Sprintf("the work is for root %s, the block's root is %s (its previous, or its account for an open block)", in.root, root)}
	}
	if v := nano.WorkValue(root, in.work); v < threshold {
		return 0, &workError{Field: field, Err: errWorkBelow,
			Detail: fmt.Sprintf("work value %016X over root %s is less than %016X, the threshold of %s", v, root, threshold, subtype)}
	}
	return in.work, nil
}
