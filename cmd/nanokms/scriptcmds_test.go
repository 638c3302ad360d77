package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The scripts' commands for long-running services (the signer, the relay,
// the gateway, the dev node), registered in TestScripts:
//
//	waitfor [-stdout REGEXP] PROG [ARGS...]
//	    run PROG like exec until it succeeds (and, with -stdout, its stdout
//	    matches REGEXP), with bounded backoff, for up to waitforLimit; its
//	    last stdout and stderr are kept. For readiness checks of a service
//	    started with 'exec … &name&', and for states a service reaches in
//	    its own time.
//	expand FILE...
//	    replace $VAR and ${VAR} in each FILE with the script's environment
//	    (configuration files need absolute paths under $WORK).
//	verifyapproval INTENT APPROVAL [PUBLIC-KEY-HEX]
//	    fail unless APPROVAL (the output of 'nanokms approve') is a valid
//	    Ed25519 signature over INTENT's canonical bytes, by PUBLIC-KEY-HEX
//	    when given; with !, fail if it is.
//	auditedit STATE SEQ alter|delete
//	    tamper with audit record SEQ in a (stopped) signer's state file:
//	    change a byte of its detail, keeping it well formed, or remove it.
//	noderpc SOCKET JSON
//	    send the RPC request JSON to the node's IPC socket SOCKET (a path),
//	    retrying until the node answers (up to waitforLimit); the answer is
//	    the command's stdout.

// waitforLimit bounds waitfor and noderpc.
const waitforLimit = 60 * time.Second

// cmdWaitfor implements `waitfor [-stdout REGEXP] PROG [ARGS...]`.
func cmdWaitfor(ts *testscript.TestScript, neg bool, args []string) {
	var want *regexp.Regexp
	if len(args) >= 2 && args[0] == "-stdout" {
		re, err := regexp.Compile("(?m)" + args[1])
		ts.Check(err)
		want, args = re, args[2:]
	}
	if neg || len(args) < 1 {
		ts.Fatalf("usage: waitfor [-stdout REGEXP] PROG [ARGS...]")
	}
	deadline := time.Now().Add(waitforLimit)
	delay := 20 * time.Millisecond
	for {
		err := ts.Exec(args[0], args[1:]...)
		if err == nil && want != nil && !want.MatchString(ts.ReadFile("stdout")) {
			err = fmt.Errorf("stdout does not match %q", want)
		} else if err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				ts.Fatalf("waitfor: %v", err)
			}
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfor: %s still fails after %s: %v", strings.Join(args, " "), waitforLimit, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 400*time.Millisecond)
	}
}

// cmdExpand implements `expand FILE...`.
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: expand FILE...")
	}
	for _, f := range args {
		out := os.Expand(ts.ReadFile(f), ts.Getenv)
		ts.Check(os.WriteFile(ts.MkAbs(f), []byte(out), 0o644))
	}
}

// cmdVerifyApproval implements `verifyapproval INTENT APPROVAL [PUBLIC-KEY-HEX]`.
func cmdVerifyApproval(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: verifyapproval INTENT APPROVAL [PUBLIC-KEY-HEX]")
	}
	in := readIntentForCheck(ts, args[0])
	var a pb.Approval
	ts.Check(protojson.Unmarshal([]byte(ts.ReadFile(args[1])), &a))
	msg, err := intent.Canonical(in)
	ts.Check(err)
	ok := intent.VerifyApproval(msg, &a)
	if ok && len(args) == 3 {
		want, err := hex.DecodeString(args[2])
		ts.Check(err)
		ok = string(want) == string(a.GetPublicKey())
	}
	switch {
	case ok && neg:
		ts.Fatalf("the approval in %s verifies", args[1])
	case !ok && !neg:
		ts.Fatalf("the approval in %s does not verify (key %X)", args[1], a.GetPublicKey())
	}
}

// readIntentForCheck reads an intent file for verifyapproval without
// trusting the reader under test alone: the readable form (nano_
// addresses, amount_xno) is decoded by intent.UnmarshalJSON, and a file in
// the protobuf JSON form by protojson too, which must agree with it.
func readIntentForCheck(ts *testscript.TestScript, file string) *pb.Intent {
	data := []byte(ts.ReadFile(file))
	in, err := intent.UnmarshalJSON(data)
	ts.Check(err)
	var legacy pb.Intent
	if protojson.Unmarshal(data, &legacy) == nil && !proto.Equal(&legacy, in) {
		ts.Fatalf("verifyapproval: %s reads as %v, but protojson reads %v", file, in, &legacy)
	}
	return in
}

// cmdAuditEdit implements `auditedit STATE SEQ alter|delete`. The signer's
// state file keeps its audit chain in the bucket "audit", keyed by the
// record's sequence number (8 bytes, big-endian), each value a
// nanokms.v1.AuditRecord.
func cmdAuditEdit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 || (args[2] != "alter" && args[2] != "delete") {
		ts.Fatalf("usage: auditedit STATE SEQ alter|delete")
	}
	seq, err := strconv.ParseUint(args[1], 10, 64)
	ts.Check(err)
	db, err := bolt.Open(ts.MkAbs(args[0]), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	ts.Check(err)
	defer db.Close()
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], seq)
	ts.Check(db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		if b == nil {
			return errors.New("auditedit: no audit bucket")
		}
		v := b.Get(key[:])
		if v == nil {
			return fmt.Errorf("auditedit: no audit record %d", seq)
		}
		if args[2] == "delete" {
			return b.Delete(key[:])
		}
		rec := new(pb.AuditRecord)
		if err := proto.Unmarshal(v, rec); err != nil {
			return err
		}
		d := []byte(rec.GetDetail())
		if len(d) == 0 {
			return fmt.Errorf("auditedit: record %d has no detail to alter", seq)
		}
		d[0] ^= 0x20 // a letter changes case
		rec.Detail = string(d)
		out, err := proto.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put(key[:], out)
	}))
}

// cmdNodeRPC implements `noderpc SOCKET JSON`.
func cmdNodeRPC(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: noderpc SOCKET JSON")
	}
	t, err := node.NewIPC("unix", ts.MkAbs(args[0]), node.IPCLegacy)
	ts.Check(err)
	defer t.Close()
	deadline := time.Now().Add(waitforLimit)
	delay := 20 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := t.Do(ctx, []byte(args[1]))
		cancel()
		if err == nil {
			fmt.Fprintf(ts.Stdout(), "%s\n", resp)
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("noderpc: no answer after %s: %v", waitforLimit, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 400*time.Millisecond)
	}
}
