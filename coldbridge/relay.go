package coldbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
)

// SignerClient is the part of the signer's gRPC API the relay uses.
type SignerClient interface {
	Sign(ctx context.Context, in *pb.SignRequest, opts ...grpc.CallOption) (*pb.SignResponse, error)
}

// Relay is the cold side of the bridge: it reads request frames, asks the
// signer, and writes the answer frames. It settles a request frame only
// after its answer is on the outbound medium, so a crash at any point
// leaves the request to be read again (and the signer answers a repeat
// identically).
type Relay struct {
	In     FrameReader
	Out    FrameWriter
	Signer SignerClient
	// Log receives one line per request; nil discards.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RetryMin and RetryMax bound the backoff while the signer is
	// unreachable or the outbound medium will not take an answer (defaults
	// 200ms and 10s). The relay never gives up on a request it has read: it
	// retries until the signer answers and the answer is written, or ctx
	// ends.
	RetryMin, RetryMax time.Duration
	// CallTimeout bounds one Sign call (default 30s).
	CallTimeout time.Duration
	// Observe, when set, is told the outcome of every request ("signed",
	// "refused", "malformed") and how long the signer took.
	Observe func(outcome string, took time.Duration)
	// Heartbeat, when positive, is how often the relay writes a heartbeat
	// frame (sender "relay") to the outbound medium, so that the hot side
	// can tell the cold side is alive.
	Heartbeat time.Duration

	wmu sync.Mutex // serialises writes to Out
}

// Relay refusal codes (BridgeRefusal.code) for requests the signer never saw.
const (
	CodeRelayMalformed = "RELAY_MALFORMED" // the request frame's payload does not decode
	CodeSignerInternal = "SIGNER_INTERNAL" // the signer failed internally; resend later
)

// internalRetries is how many times an internal signer error is retried
// before the relay answers with CodeSignerInternal.
const internalRetries = 3

func (r *Relay) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Relay) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run relays until ctx is done (then it returns nil). An answer the
// outbound medium will not take (it is full, pulled, or holds an entry
// that cannot be set aside) is written again with the backoff of RetryMin
// and RetryMax until it goes (each failure logged), and only then is the
// request settled: the relay resumes by itself when the medium is back.
// Run returns an error only when the inbound reader fails for good (it was
// closed) or settling a frame fails (a FileReader rides out what the
// medium does, so that is never the medium's doing).
func (r *Relay) Run(ctx context.Context) error {
	if r.Heartbeat > 0 {
		hbCtx, stop := context.WithCancel(ctx)
		defer stop()
		go r.heartbeats(hbCtx)
	}
	for {
		rec, err := r.In.ReadFrame(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("coldbridge: relay: reading: %w", err)
		}
		if err := r.handle(ctx, rec); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func (r *Relay) handle(ctx context.Context, rec *Received) error {
	f := rec.Frame
	switch f.Type {
	case TypeHeartbeat:
		return rec.Done()
	case TypeRequest:
	default:
		return rec.Reject(fmt.Sprintf("a %s frame does not belong on the cold side's inbound medium", f.Type))
	}
	var breq pb.BridgeRequest
	if err := proto.Unmarshal(f.Payload, &breq); err != nil || breq.GetSign().GetIntent().GetRequestId() != f.RequestID {
		reason := "the payload is not a BridgeRequest for this request id"
		if err == nil {
			reason = fmt.Sprintf("the payload's request id %q is not the frame's", breq.GetSign().GetIntent().GetRequestId())
		}
		r.log().Warn("malformed request frame", "request_id", f.RequestID, "file", rec.Name, "reason", reason)
		if r.Observe != nil {
			r.Observe("malformed", 0)
		}
		refusal := &pb.BridgeRefusal{Code: CodeRelayMalformed, Detail: reason}
		if err := r.write(ctx, TypeRefusal, f.RequestID, refusal); err != nil {
			return r.unwritable(rec, err)
		}
		return rec.Reject(reason)
	}
	start := time.Now()
	typ, answer, err := r.ask(ctx, breq.GetSign())
	if err != nil {
		return err // ctx ended: the frame stays for the next run
	}
	if r.Observe != nil {
		outcome := "signed"
		if typ == TypeRefusal {
			outcome = "refused"
		}
		r.Observe(outcome, time.Since(start))
	}
	if err := r.write(ctx, typ, f.RequestID, answer); err != nil {
		return r.unwritable(rec, err)
	}
	return rec.Done()
}

// unwritable handles an answer write that failed for good: ctx ended
// (the request stays for the next run), or the answer cannot be framed at
// all (then the request is rejected into quarantine, not retried forever).
func (r *Relay) unwritable(rec *Received, err error) error {
	var fe *FrameError
	if errors.As(err, &fe) {
		r.log().Error("the answer cannot be framed; rejecting the request", "request_id", rec.Frame.RequestID, "error", err.Error())
		return rec.Reject("the answer cannot be framed: " + err.Error())
	}
	return err
}

// ask calls the signer until it answers, and returns the answer frame's
// type and payload.
func (r *Relay) ask(ctx context.Context, req *pb.SignRequest) (FrameType, proto.Message, error) {
	wait, maxWait := r.backoff()
	callTimeout := r.CallTimeout
	if callTimeout <= 0 {
		callTimeout = 30 * time.Second
	}
	id := req.GetIntent().GetRequestId()
	internal := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := r.Signer.Sign(cctx, req)
		cancel()
		if err == nil {
			r.log().Info("signed", "request_id", id, "hash", fmt.Sprintf("%X", resp.GetHash()), "subtype", resp.GetSubtype())
			return TypeResponse, &pb.BridgeResponse{Sign: resp}, nil
		}
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		st := status.Convert(err)
		if ref, ok := signer.RefusalFromStatus(st); ok {
			r.log().Info("refused", "request_id", id, "reason", signer.ReasonName(ref.Reason), "detail", ref.Detail)
			out := &pb.BridgeRefusal{Reason: ref.Reason, Detail: ref.Detail, Code: codeName(st.Code())}
			if ref.Pending != nil {
				out.Pending = pb.BlockFromNano(ref.Pending)
			}
			return TypeRefusal, out, nil
		}
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted, codes.Aborted:
			// The signer is restarting or busy: wait and ask again.
		case codes.Internal, codes.Unknown:
			internal++
			if internal > internalRetries {
				r.log().Error("signer failed", "request_id", id, "error", st.Message())
				return TypeRefusal, &pb.BridgeRefusal{Code: CodeSignerInternal, Detail: st.Message()}, nil
			}
		default:
			r.log().Warn("signer rejected the call", "request_id", id, "code", st.Code().String(), "error", st.Message())
			return TypeRefusal, &pb.BridgeRefusal{Code: codeName(st.Code()), Detail: st.Message()}, nil
		}
		r.log().Warn("signer unreachable, retrying", "request_id", id, "code", st.Code().String(), "wait", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// codeName returns a gRPC code as the upper-case name the proto uses
// (e.g. "FAILED_PRECONDITION").
func codeName(c codes.Code) string {
	names := map[codes.Code]string{
		codes.InvalidArgument: "INVALID_ARGUMENT", codes.FailedPrecondition: "FAILED_PRECONDITION",
		codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
		codes.AlreadyExists: "ALREADY_EXISTS", codes.NotFound: "NOT_FOUND", codes.Unimplemented: "UNIMPLEMENTED",
		codes.Unauthenticated: "UNAUTHENTICATED", codes.Internal: "INTERNAL", codes.OutOfRange: "OUT_OF_RANGE",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return c.String()
}

// heartbeats writes a heartbeat frame every r.Heartbeat until ctx ends.
// A failed write is logged: the next one may succeed (the stick is back).
func (r *Relay) heartbeats(ctx context.Context) {
	t := time.NewTicker(r.Heartbeat)
	defer t.Stop()
	var seq uint64
	for {
		seq++
		f, err := NewHeartbeatFrame(&pb.Heartbeat{Sender: "relay", Seq: seq}, r.now())
		if err == nil {
			r.wmu.Lock()
			err = r.Out.WriteFrame(ctx, f)
			r.wmu.Unlock()
		}
		if err != nil && ctx.Err() == nil {
			r.log().Warn("writing a heartbeat", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// write writes an answer frame. While the medium will not take it, it
// tries again with backoff (RetryMin to RetryMax), the frame stamped anew
// each time, until it goes or ctx ends. A frame that cannot be encoded is
// returned at once (a *FrameError).
func (r *Relay) write(ctx context.Context, typ FrameType, id string, m proto.Message) error {
	payload, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	wait, maxWait := r.backoff()
	for {
		f := &Frame{Type: typ, RequestID: id, Created: r.now(), Payload: payload}
		r.wmu.Lock()
		err = r.Out.WriteFrame(ctx, f)
		r.wmu.Unlock()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe *FrameError
		if errors.As(err, &fe) {
			return fmt.Errorf("coldbridge: relay: the %s for %s: %w", typ, id, err)
		}
		r.log().Warn("the outbound medium did not take the answer; retrying", "request_id", id, "type", typ.String(),
			"medium_full", errors.Is(err, ErrMediumFull), "error", err.Error(), "wait", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// backoff returns the first and the longest wait between retries.
func (r *Relay) backoff() (time.Duration, time.Duration) {
	wait := r.RetryMin
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	maxWait := r.RetryMax
	if maxWait <= 0 {
		maxWait = 10 * time.Second
	}
	return wait, max(wait, maxWait)
}
