package signer

import (
	"context"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// PrepareRelease implements nanokms.v1.Signer.
func (srv *Server) PrepareRelease(_ context.Context, req *pb.PrepareReleaseRequest) (*pb.ReleaseStatement, error) {
	if len(req.GetAccount()) != nano.PublicKeySize {
		return nil, StatusOf(refuse(rMalformed, "account: want %d bytes", nano.PublicKeySize)).Err()
	}
	if len(req.GetBlockHash()) != nano.HashSize {
		return nil, StatusOf(refuse(rMalformed, "block_hash: want %d bytes", nano.HashSize)).Err()
	}
	st, err := srv.s.PrepareRelease(nano.PublicKey(req.GetAccount()), nano.Hash(req.GetBlockHash()), req.GetExpiresAtUnix(), req.GetPrevious())
	if err != nil {
		return nil, srv.status(err, "")
	}
	return st, nil
}

// Release implements nanokms.v1.Signer.
func (srv *Server) Release(ctx context.Context, req *pb.ReleaseRequest) (*pb.ReleaseResponse, error) {
	res, err := srv.s.Release(ctx, req)
	if err != nil {
		return nil, srv.status(err, "")
	}
	st, err := srv.accountState(res.Record)
	if err != nil {
		return nil, err
	}
	return &pb.ReleaseResponse{Account: st, AuditSeq: res.AuditSeq, RequestId: res.RequestID}, nil
}
