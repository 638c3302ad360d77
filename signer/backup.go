package signer

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// backupChunk is the most bytes of the export one BackupChunk carries.
const backupChunk = 256 << 10

// Backup implements nanokms.v1.Signer: it reads the whole state in one
// read transaction (Store.Export; on PostgreSQL one REPEATABLE READ
// snapshot, PGStore.Export), checks it (the audit chain verifies), and
// streams it in the state export format while the signer goes on
// deciding: the transaction ends before the first byte is sent, so a slow
// client holds nothing of the store's. One backup runs at a time; another
// waits for it.
func (srv *Server) Backup(_ *pb.BackupRequest, stream grpc.ServerStreamingServer[pb.BackupChunk]) error {
	ctx := stream.Context()
	select {
	case srv.backups <- struct{}{}:
		defer func() { <-srv.backups }()
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	start := time.Now()
	x, err := srv.s.state.export(ctx, srv.s.opts.Now())
	if err != nil {
		srv.log.Error("backup failed: the state could not be exported", "error", err.Error())
		return srv.status(err, "")
	}
	w := &chunkWriter{send: stream.Send, buf: make([]byte, 0, backupChunk)}
	n, err := x.WriteTo(w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		srv.log.Warn("backup not sent whole", "bytes", n, "error", err.Error())
		return err
	}
	srv.log.Info("backup sent", "bytes", n, "accounts", len(x.Accounts), "signed_blocks", len(x.Signed),
		"audit_records", len(x.Audit), "took", time.Since(start).String())
	return nil
}

// chunkWriter sends what is written to it in BackupChunks of at most
// backupChunk bytes.
type chunkWriter struct {
	send func(*pb.BackupChunk) error
	buf  []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		m := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:m]...)
		p, n = p[m:], n+m
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush sends what is buffered, and starts a new buffer: a message must
// not change after it was sent (gRPC's SendMsg contract).
func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(&pb.BackupChunk{Data: w.buf})
	w.buf = make([]byte, 0, backupChunk)
	return err
}

func (b boltState) export(_ context.Context, now time.Time) (*StateExport, error) {
	return b.s.Export(now)
}

func (s *PGStore) export(ctx context.Context, now time.Time) (*StateExport, error) {
	return s.Export(ctx, now)
}
