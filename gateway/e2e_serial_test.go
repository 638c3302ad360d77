package gateway

import (
	"io"
	"testing"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	"github.com/nanokms/nanokms/bridge/serial"
	"github.com/nanokms/nanokms/bridge/serial/serialtest"
)

// The end-to-end lifecycle (runLifecycle: open, send, change, receive and
// a refusal) over a serial line instead of files. One line carries both
// directions: the gateway's end writes requests and reads answers, the
// relay's end reads requests and writes answers.
//
//	gateway ─▶ pty A ═ byte pump ═ pty B ─▶ relay      (TestEndToEndSerialPTY)
//	gateway ─▶ socat end a ═ socat ═ end b ─▶ relay    (TestEndToEndSerialSocat)

// serialMedium returns a mediumFunc whose two ends are the serial devices
// gwDev and relayDev, opened by open. Every frame the line drops is
// recorded in rejects: a clean line drops none.
func serialMedium(gwDev, relayDev string, open func(t *testing.T, dev string, side bridge.Side, rejects *frametest.RejectLog) (frame.FrameWriter, frame.FrameReader), rejects *frametest.RejectLog) mediumFunc {
	return func(t *testing.T) (frame.FrameWriter, frame.FrameReader, frame.FrameReader, frame.FrameWriter) {
		t.Helper()
		gwOut, gwIn := open(t, gwDev, bridge.Hot, rejects)
		relayOut, relayIn := open(t, relayDev, bridge.Cold, rejects)
		return gwOut, gwIn, relayIn, relayOut
	}
}

// openSerialEnd opens dev with OpenSerial, unpaced, and filters the frame
// types side takes, as OpenMedium does.
func openSerialEnd(t *testing.T, dev string, side bridge.Side, rejects *frametest.RejectLog) (frame.FrameWriter, frame.FrameReader) {
	t.Helper()
	s, err := serial.OpenSerial(dev, serial.SerialOptions{Baud: 921600, NoPace: true, OnReject: rejects.Record})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, bridge.FilterTypes(s, side, rejects.Record)
}

// openSerialMedium opens dev through OpenMedium, as the relay and gateway
// commands do: a pseudo-terminal is paced to the configured baud rate.
func openSerialMedium(t *testing.T, dev string, side bridge.Side, rejects *frametest.RejectLog) (frame.FrameWriter, frame.FrameReader) {
	t.Helper()
	m, err := bridge.Open(bridge.Config{Kind: "serial", Device: dev, Baud: 921600}, side, rejects.Record, func(err error) { t.Logf("medium: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if s, ok := m.Writer.(*serial.Serial); !ok || !s.Paced() {
		t.Fatalf("a pseudo-terminal opened through OpenMedium is not paced")
	}
	return m.Writer, m.Reader
}

// TestEndToEndSerialPTY runs the lifecycle over two pseudo-terminals whose
// master sides a byte pump joins in both directions: what the gateway
// writes to its terminal comes out of the relay's, and back.
func TestEndToEndSerialPTY(t *testing.T) { forEachStore(t, testEndToEndSerialPTY) }

func testEndToEndSerialPTY(t *testing.T, kind storeKind) {
	mA, sA := serialtest.MustPTYPair(t)
	mB, sB := serialtest.MustPTYPair(t)
	rejects := &frametest.RejectLog{}
	w := newBridgeWorld(t, kind, serialMedium(sA.Name(), sB.Name(), openSerialEnd, rejects), 1)
	// The pump starts once both ends are open (and in raw mode). It stops
	// when the masters close, at the end of the test.
	go io.Copy(mB, mA)
	go io.Copy(mA, mB)
	runLifecycle(t, w)
	if names, errs := rejects.Take(); len(names) != 0 {
		t.Fatalf("a clean line dropped frames: %v", errs)
	}
}

// TestEndToEndSerialSocat runs the lifecycle over a socat null-modem pair,
// each end opened through OpenMedium (paced at 921600 baud).
func TestEndToEndSerialSocat(t *testing.T) { forEachStore(t, testEndToEndSerialSocat) }

func testEndToEndSerialSocat(t *testing.T, kind storeKind) {
	a, b := serialtest.StartSocatPair(t)
	rejects := &frametest.RejectLog{}
	w := newBridgeWorld(t, kind, serialMedium(a, b, openSerialMedium, rejects), 1)
	runLifecycle(t, w)
	if names, errs := rejects.Take(); len(names) != 0 {
		t.Fatalf("a clean line dropped frames: %v", errs)
	}
}
