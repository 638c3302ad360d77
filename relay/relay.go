package relay

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

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/internal/backoff"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
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
	In     frame.FrameReader
	Out    frame.FrameWriter
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
	// "refused", "malformed", or "stale": dropped unanswered for its
	// leader epoch) and how long the signer took.
	Observe func(outcome string, took time.Duration)
	// Heartbeat, when positive, is how often the relay writes a heartbeat
	// frame (sender "relay") to the outbound medium, so that the hot side
	// can tell the cold side is alive.
	Heartbeat time.Duration

	wmu sync.Mutex // serialises writes to Out

	emu   sync.Mutex
	epoch uint64 // the highest leader epoch of a well-formed request read
}

// LeaderEpoch returns the highest leader epoch the relay has read in a
// well-formed request frame since it started (0: none carried one).
func (r *Relay) LeaderEpoch() uint64 {
	r.emu.Lock()
	defer r.emu.Unlock()
	return r.epoch
}

// internalRetries is how many times an internal signer error is retried
// before the relay answers with frame.RefusalSignerInternal.
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

// maxBatch bounds how many request frames the relay takes from the medium
// at once: it asks the signer for all of them together (the signer
// group-commits its decisions) and writes their answers with one sync of
// the medium.
const maxBatch = 64

// Run relays until ctx is done (then it returns nil). It takes the
// request frames waiting on the medium in batches (frame.ReadBatch): it
// asks the signer for every request of a batch at once, writes all their
// answers (frame.WriteAll: on a file medium one sync of the directory for
// the batch) and only then settles the requests (frame.DoneAll). An
// answer the outbound medium will not take (it is full, pulled, or holds
// an entry that cannot be set aside) is written again with the backoff of
// RetryMin and RetryMax until it goes (each failure logged), and only then
// is its request settled: the relay resumes by itself when the medium is
// back. Run returns an error only when the inbound reader fails for good
// (it was closed) or settling a frame fails (a FileReader rides out what
// the medium does, so that is never the medium's doing).
func (r *Relay) Run(ctx context.Context) error {
	if r.Heartbeat > 0 {
		// The heartbeat writer ends before Run returns: nothing is written
		// to the medium after that.
		hbCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { r.heartbeats(hbCtx) })
		defer wg.Wait()
		defer stop()
	}
	for {
		recs, err := frame.ReadBatch(ctx, r.In, maxBatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay: relay: reading: %w", err)
		}
		if err := r.handleBatch(ctx, recs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// reply is what the relay does with one frame it read: write an answer
// (typ and msg, when msg is set), then reject the frame with reason (when
// set) or settle it as done.
type reply struct {
	rec    *frame.Received
	typ    frame.FrameType
	msg    proto.Message
	reject string
}

// signAsk is a well-formed request of a batch, to ask of the signer.
type signAsk struct {
	rp  *reply
	req *pb.BridgeRequest
}

// handleBatch answers the frames of one batch: every request is asked of
// the signer concurrently, every answer written in one batch, then the
// frames are settled. When ctx ends first nothing is settled: the frames
// stay for the next run.
func (r *Relay) handleBatch(ctx context.Context, recs []*frame.Received) error {
	replies := make([]reply, len(recs))
	var asks []signAsk
	var wg sync.WaitGroup
	for i, rec := range recs {
		rp := &replies[i]
		rp.rec = rec
		f := rec.Frame
		switch f.Type {
		case frame.TypeHeartbeat:
			continue
		case frame.TypeRequest:
		default:
			rp.reject = fmt.Sprintf("a %s frame does not belong on the cold side's inbound medium", f.Type)
			continue
		}
		breq := pb.BridgeRequest{}
		if err := proto.Unmarshal(f.Payload, &breq); err != nil || breq.GetSign().GetIntent().GetRequestId() != f.RequestID {
			reason := "the payload is not a BridgeRequest for this request id"
			if err == nil {
				reason = fmt.Sprintf("the payload's request id %q is not the frame's", breq.GetSign().GetIntent().GetRequestId())
			}
			r.log().Warn("malformed request frame", "request_id", f.RequestID, "file", rec.Name, "reason", reason)
			if r.Observe != nil {
				r.Observe("malformed", 0)
			}
			rp.typ, rp.msg, rp.reject = frame.TypeRefusal, &pb.BridgeRefusal{Code: string(frame.RefusalRelayMalformed), Detail: reason}, reason
			continue
		}
		asks = append(asks, signAsk{rp: rp, req: &breq})
	}
	mark := r.raiseEpoch(asks)
	for _, a := range asks {
		rp := a.rp
		if e := a.req.GetLeaderEpoch(); e != 0 && e < mark {
			// A deposed leader's late frame: settled unanswered, since an
			// answer would reach the new leader under the same request id.
			r.log().Warn("stale leader epoch: request dropped unanswered", "request_id", rp.rec.Frame.RequestID, "file", rp.rec.Name,
				"leader_epoch", e, "highest_epoch", mark)
			if r.Observe != nil {
				r.Observe("stale", 0)
			}
			continue
		}
		wg.Go(func() {
			start := time.Now()
			typ, answer, err := r.ask(ctx, a.req.GetSign())
			if err != nil {
				return // ctx ended: the frame stays for the next run
			}
			if r.Observe != nil {
				outcome := "signed"
				if typ == frame.TypeRefusal {
					outcome = "refused"
				}
				r.Observe(outcome, time.Since(start))
			}
			rp.typ, rp.msg = typ, answer
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.writeReplies(ctx, replies); err != nil {
		return err // ctx ended: the frames stay for the next run
	}
	var done []*frame.Received
	for i := range replies {
		rp := &replies[i]
		if rp.reject != "" {
			if err := rp.rec.Reject(rp.reject); err != nil {
				return err
			}
			continue
		}
		done = append(done, rp.rec)
	}
	return frame.DoneAll(r.In, done)
}

// raiseEpoch raises the highest leader epoch seen to the highest of the
// well-formed requests of a batch, and returns it: the frames of one batch
// are fenced against each other too, whatever order the medium gave them.
func (r *Relay) raiseEpoch(reqs []signAsk) uint64 {
	r.emu.Lock()
	defer r.emu.Unlock()
	for _, a := range reqs {
		if e := a.req.GetLeaderEpoch(); e > r.epoch {
			r.log().Info("a new leader epoch on the medium", "leader_epoch", e, "previous", r.epoch, "request_id", a.rp.rec.Frame.RequestID)
			r.epoch = e
		}
	}
	return r.epoch
}

// writeReplies writes the answers of replies in one batch. While the
// medium will not take them it tries again with backoff (RetryMin to
// RetryMax), the frames built anew by their constructors
// (frame.NewResponseFrame or frame.NewRefusalFrame) and stamped with the
// time each time, until they go or ctx ends (its error is returned). An
// answer that cannot be built or encoded (a *FrameError) is not written:
// its request is rejected into quarantine instead, not retried forever.
func (r *Relay) writeReplies(ctx context.Context, replies []reply) error {
	var todo []*reply
	for i := range replies {
		if replies[i].msg != nil {
			todo = append(todo, &replies[i])
		}
	}
	b := r.backoff()
	for len(todo) > 0 {
		now := r.now()
		var fs []*frame.Frame
		var framed []*reply
		for _, rp := range todo {
			f, err := buildAnswer(rp.typ, rp.rec.Frame.RequestID, rp.msg, now)
			if err != nil {
				r.unframable(rp, err)
				continue
			}
			fs, framed = append(fs, f), append(framed, rp)
		}
		r.wmu.Lock()
		n, err := frame.WriteAll(ctx, r.Out, fs)
		r.wmu.Unlock()
		todo = framed[n:]
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe *frame.FrameError
		if errors.As(err, &fe) && len(todo) > 0 {
			r.unframable(todo[0], err)
			todo = todo[1:]
			continue
		}
		wait := b.Next()
		for _, rp := range todo {
			r.log().Warn("the outbound medium did not take the answer; retrying", "request_id", rp.rec.Frame.RequestID, "type", rp.typ.String(),
				"medium_full", errors.Is(err, filemedium.ErrMediumFull), "error", err.Error(), "wait", wait.String())
		}
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	return nil
}

// unframable marks a reply whose answer cannot be framed at all: its
// request is rejected into quarantine.
func (r *Relay) unframable(rp *reply, err error) {
	err = fmt.Errorf("relay: relay: the %s for %s: %w", rp.typ, rp.rec.Frame.RequestID, err)
	r.log().Error("the answer cannot be framed; rejecting the request", "request_id", rp.rec.Frame.RequestID, "error", err.Error())
	rp.msg = nil
	if rp.reject == "" {
		rp.reject = "the answer cannot be framed: " + err.Error()
	}
}

// buildAnswer returns the answer frame of type typ carrying m for request
// id, stamped now. It fails with a *FrameError.
func buildAnswer(typ frame.FrameType, id string, m proto.Message, now time.Time) (*frame.Frame, error) {
	switch m := m.(type) {
	case *pb.BridgeResponse:
		if got := m.GetSign().GetRequestId(); got != id {
			return nil, frame.Errorf(frame.ErrCodeMismatch, "the signer answered request %q for %q", got, id)
		}
		return frame.NewResponseFrame(m, now)
	case *pb.BridgeRefusal:
		return frame.NewRefusalFrame(id, m, now)
	}
	return nil, frame.Errorf(frame.ErrCodeType, "no %s frame carries a %T", typ, m)
}

// ask calls the signer until it answers, and returns the answer frame's
// type and payload.
func (r *Relay) ask(ctx context.Context, req *pb.SignRequest) (frame.FrameType, proto.Message, error) {
	b := r.backoff()
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
			return frame.TypeResponse, &pb.BridgeResponse{Sign: resp}, nil
		}
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		st := status.Convert(err)
		if ref, ok := signerapi.RefusalFromStatus(st); ok {
			r.log().Info("refused", "request_id", id, "reason", signerapi.ReasonName(ref.Reason), "detail", ref.Detail)
			out := &pb.BridgeRefusal{Reason: ref.Reason, Detail: ref.Detail, Code: string(frame.RefusalCodeOf(st.Code()))}
			if ref.Pending != nil {
				out.Pending = pb.BlockFromNano(ref.Pending)
			}
			return frame.TypeRefusal, out, nil
		}
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted, codes.Aborted:
			// The signer is restarting or busy: wait and ask again.
		case codes.Internal, codes.Unknown:
			internal++
			if internal > internalRetries {
				r.log().Error("signer failed", "request_id", id, "error", st.Message())
				return frame.TypeRefusal, &pb.BridgeRefusal{Code: string(frame.RefusalSignerInternal), Detail: st.Message()}, nil
			}
		default:
			r.log().Warn("signer rejected the call", "request_id", id, "code", st.Code().String(), "error", st.Message())
			return frame.TypeRefusal, &pb.BridgeRefusal{Code: string(frame.RefusalCodeOf(st.Code())), Detail: st.Message()}, nil
		}
		wait := b.Next()
		r.log().Warn("signer unreachable, retrying", "request_id", id, "code", st.Code().String(), "wait", wait.String())
		if !backoff.Sleep(ctx, wait) {
			return 0, nil, ctx.Err()
		}
	}
}

// heartbeats writes a heartbeat frame every r.Heartbeat until ctx ends.
// A failed write is logged: the next one may succeed (the stick is back).
func (r *Relay) heartbeats(ctx context.Context) {
	t := time.NewTicker(r.Heartbeat)
	defer t.Stop()
	var seq uint64
	for {
		seq++
		f, err := frame.NewHeartbeatFrame(&pb.Heartbeat{Sender: "relay", Seq: seq}, r.now())
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

// backoff returns the pacing of retries: RetryMin (default 200ms),
// doubling up to RetryMax (default 10s).
func (r *Relay) backoff() *backoff.Capped {
	b := &backoff.Capped{Min: r.RetryMin, Max: r.RetryMax}
	if b.Min <= 0 {
		b.Min = 200 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 10 * time.Second
	}
	return b
}
