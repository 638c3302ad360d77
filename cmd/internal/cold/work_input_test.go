package cold

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

const (
	testRoot = "44643E5CF2D7604BA2FFF9B21C537FACA12663570C5D031B792D46EEE63F5236"
	testWork = nano.Work(0x396e61baa4875359) // meets the send threshold over testRoot
)

func TestParseWorkInput(t *testing.T) {
	root, _ := nano.ParseHash(testRoot)
	for _, c := range []struct {
		name, in string
		hasRoot  bool
	}{
		{"bare", "396e61baa4875359", false},
		{"bare, upper case, a newline", "396E61BAA4875359\n", false},
		{"work generate text", "work:       396e61baa4875359\nwork value: FFFFFFF9FD443C06\n", false},
		{"work generate --json", `{"root": "` + testRoot + `", "work": "396e61baa4875359", "work_value": "FFFFFFF9FD443C06", "work_valid": true, "attempts": 5, "hash_rate": 1.5}`, true},
		{"node work_generate", `{"work": "396e61baa4875359", "difficulty": "fffffff9fd443c06", "multiplier": "1.19", "hash": "` + testRoot + `"}`, true},
		{"JSON without root", `{"work": "396e61baa4875359"}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseWorkInput("--work", []byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if got.work != testWork || got.hasRoot != c.hasRoot || (c.hasRoot && got.root != root) {
				t.Errorf("got %+v", got)
			}
		})
	}
	for _, c := range []struct{ name, in string }{
		{"empty", " \n"},
		{"15 digits", "396e61baa487535"},
		{"0x prefix", "0x396e61baa4875359"},
		{"two work lines", "work: 396e61baa4875359\nwork: 396e61baa4875359\n"},
		{"a work line without hex", "work: soon\n"},
		{"prose", "here is your work, enjoy"},
		{"JSON without work", `{"root": "` + testRoot + `"}`},
		{"JSON work a number", `{"work": 4138455829431366489}`},
		{"JSON work twice", `{"work": "396e61baa4875359", "work": "396e61baa4875359"}`},
		{"JSON root and hash differ", `{"work": "396e61baa4875359", "root": "` + testRoot + `", "hash": "` + strings.Repeat("0", 64) + `"}`},
		{"JSON root not a hash", `{"work": "396e61baa4875359", "root": "nope"}`},
		{"JSON truncated", `{"work": "396e61baa4875359"`},
		{"JSON trailing data", `{"work": "396e61baa4875359"} x`},
		{"too long", strings.Repeat(" ", maxWorkInput) + "396e61baa4875359"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseWorkInput("--work-file", []byte(c.in))
			var we *workError
			if !errors.As(err, &we) || we.Field != "--work-file" || !errors.Is(err, errWorkMalformed) {
				t.Fatalf("error %v, want a *workError naming --work-file wrapping errWorkMalformed", err)
			}
			if strings.Contains(err.Error(), "enjoy") || strings.Contains(err.Error(), "nope") {
				t.Errorf("the error repeats the input: %v", err)
			}
		})
	}
}

func TestCheckWork(t *testing.T) {
	prev, _ := nano.ParseHash(testRoot)
	b := &nano.StateBlock{Previous: prev}
	if w, err := checkWork("--work", workInput{work: testWork}, b, nano.ThresholdSend, "a send block"); err != nil || w != testWork {
		t.Fatalf("good work: %v, %v", w, err)
	}
	if _, err := checkWork("--work", workInput{work: testWork + 1}, b, nano.ThresholdSend, "a send block"); !errors.Is(err, errWorkBelow) {
		t.Errorf("another nonce: %v", err)
	}
	other := workInput{work: testWork, root: nano.Hash{1}, hasRoot: true}
	if _, err := checkWork("--work", other, b, nano.ThresholdSend, "a send block"); !errors.Is(err, errWorkRoot) {
		t.Errorf("work for another root: %v", err)
	}
	// An open block's root is its account.
	open := &nano.StateBlock{Account: nano.PublicKey(prev)}
	if _, err := checkWork("--work", workInput{work: testWork}, open, nano.ThresholdReceive, "an open block"); err != nil {
		t.Errorf("open block: %v", err)
	}
}

// FuzzParseWorkInput reads arbitrary bytes as a work generator's output:
// never a panic; a failure is a *workError wrapping errWorkMalformed; a
// nonce read back from each form parseWorkInput reads is the same nonce.
func FuzzParseWorkInput(f *testing.F) {
	f.Add([]byte("396e61baa4875359"))
	f.Add([]byte("work:       396e61baa4875359\nwork value: FFFFFFF9FD443C06\n"))
	f.Add([]byte(`{"root": "` + testRoot + `", "work": "396e61baa4875359", "work_valid": true}`))
	f.Add([]byte(`{"work": "396e61baa4875359", "hash": "` + testRoot + `", "multiplier": "1.19"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := parseWorkInput("--work", data)
		if err != nil {
			var we *workError
			if !errors.As(err, &we) || we.Field != "--work" || !errors.Is(err, errWorkMalformed) {
				t.Fatalf("error %v is not a *workError wrapping errWorkMalformed", err)
			}
			return
		}
		forms := []string{
			in.work.String(),
			fmt.Sprintf("work:       %s\nwork value: %016X\n", in.work, uint64(0)),
			fmt.Sprintf(`{"work": %q}`, in.work.String()),
		}
		if in.hasRoot {
			forms = append(forms, fmt.Sprintf(`{"root": %q, "work": %q}`, in.root.String(), in.work.String()))
		}
		for _, form := range forms {
			back, err := parseWorkInput("--work", []byte(form))
			if err != nil {
				t.Fatalf("%q does not read back: %v", form, err)
			}
			if back.work != in.work || (back.hasRoot && back.root != in.root) {
				t.Fatalf("%q reads back as %+v, want %+v", form, back, in)
			}
		}
	})
}
