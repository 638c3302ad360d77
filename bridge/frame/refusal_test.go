package frame_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/nanokms/nanokms/bridge/frame"
)

// TestRefusalCodes: every gRPC code has its proto name, the set is closed
// (Known), and only the cold side's own failures are resent.
func TestRefusalCodes(t *testing.T) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		rc := frame.RefusalCodeOf(c)
		if !rc.Known() {
			t.Errorf("RefusalCodeOf(%s) = %q is not Known", c, rc)
		}
		if rc.Resend() {
			t.Errorf("RefusalCodeOf(%s) = %q: a signer's answer is not resent", c, rc)
		}
	}
	for c, want := range map[codes.Code]frame.RefusalCode{
		codes.FailedPrecondition: "FAILED_PRECONDITION", codes.PermissionDenied: "PERMISSION_DENIED",
		codes.InvalidArgument: "INVALID_ARGUMENT", codes.DataLoss: "DATA_LOSS", codes.Code(99): "UNKNOWN",
	} {
		if got := frame.RefusalCodeOf(c); got != want {
			t.Errorf("RefusalCodeOf(%s) = %q, want %q", c, got, want)
		}
	}
	for _, rc := range []frame.RefusalCode{frame.RefusalRelayMalformed, frame.RefusalSignerInternal} {
		if !rc.Known() || !rc.Resend() {
			t.Errorf("%q: Known %v, Resend %v; want both", rc, rc.Known(), rc.Resend())
		}
	}
	for _, rc := range []frame.RefusalCode{"", "failed_precondition", "RELAY_MALFORMED ", "Canceled"} {
		if rc.Known() || rc.Resend() {
			t.Errorf("%q: Known %v, Resend %v; want neither", rc, rc.Known(), rc.Resend())
		}
	}
	// The proto's own spelling of the gRPC names is the wire's.
	if got := frame.RefusalCodeOf(codes.Canceled); got != "CANCELLED" {
		t.Errorf("Canceled is %q on the wire, want CANCELLED", got)
	}
}
