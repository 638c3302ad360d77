package gateway

import (
	"errors"
	"fmt"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// store is where the gateway keeps its requests: a bbolt file (the
// embedded default, gatewayStore) or a PostgreSQL database (pgStore).
// Both keep the same records (gateway_record.go), the same work lists and
// the same rules: a request id is stored once, a status only moves
// forward (statusStep), a signed block's hash is recorded once, and a
// write returns only once it is durable (committed), the writes that
// arrive together sharing one transaction.
//
// Errors: a write to a bbolt file that fails for lack of space wraps
// ErrStoreFull; an operation on a database that is not reached or was
// lost wraps ErrStoreUnavailable. In both cases nothing of the write was
// kept, unless the commit's outcome is unknown (the connection was lost
// during COMMIT): then the caller, told of a failure, finds the write
// done when it tries again, and every write the gateway makes may be
// made again.
type store interface {
	// get returns the record of request id; ok is false when there is none.
	get(id string) (e *entry, ok bool, err error)
	// insert stores a new record; it fails with errExists if the id is
	// taken.
	insert(e *entry) error
	// apply runs the changes of batch, in order, in one transaction, and
	// takes closing (request ids) off the open list in the same
	// transaction. It returns an error only when the transaction failed:
	// then nothing of it is stored, and no change's out is set. A change
	// whose f moves the status backwards (statusStep) has c.err wrapping
	// errStatusRegression and leaves its record as it was.
	apply(what string, batch []*change, closing []string) error
	// openItems calls f with the summary of every request on the open
	// list (the send loop's work), in request id order.
	openItems(f func(it openItem) error) error
	// eachPublishing calls f with the id of every request on the publish
	// list (signed or published, not final, when there is a node).
	eachPublishing(f func(id string) error) error
	// each calls f for every record, in request id order.
	each(f func(e *entry) error) error
	// signedBy returns the request id under which the cold side signed
	// the block with this hash; ok is false when none did.
	signedBy(hash []byte) (id string, ok bool, err error)
	// probe makes a small write to find out whether the store takes
	// writes again (full: after a lack of space).
	probe(full bool) error
	// setOnCommit sets the function told the outcome of every commit
	// attempted (nil: it succeeded), and of every read that could not
	// reach the store. Called before the store is used.
	setOnCommit(f func(err error))
	// close finishes the writes queued and closes the store. It is
	// idempotent; a write after it fails with errStoreClosed.
	close() error
}

// ErrStoreUnavailable is wrapped by the error of an operation on the
// gateway's PostgreSQL database when the database is not reached or was
// lost (refused or broken connections, a server shutting down, the
// operation timing out): nothing of a write was kept, unless the
// connection was lost during its COMMIT, and trying again later is right.
// The Custody API returns it as Unavailable; the gateway reports itself
// not ready (the "store" check) until the database answers again.
var ErrStoreUnavailable = errors.New("the gateway's state database is unavailable")

// errStatusRegression is wrapped by a change's error when it would move a
// request's status backwards (statusStep); the record is left as it was.
var errStatusRegression = errors.New("gateway: a request's status may not go back")

// statusStep reports whether a request may go from status from to status
// to: forward only, by the statuses' rank (statusRank). QUEUED and
// SENT_TO_COLD share a rank (a request is written to the bridge, and
// queued again to be sent on a newer head); a verified signed block
// overrides a refusal; CONFIRMED and FAILED are final: nothing leaves
// them. The PostgreSQL schema enforces the same rule with the same ranks
// (gateway_status_rank, pgschema/0001_gateway_state.sql), whatever the
// writer.
func statusStep(from, to pb.RequestStatus) bool {
	if from == to {
		return true
	}
	rf, rt := statusRank(from), statusRank(to)
	return rf < finalRank && rt >= rf
}

// finalRank is the rank of the final statuses.
const finalRank = 5

// statusRank orders the statuses: QUEUED and SENT_TO_COLD 1, REFUSED 2,
// SIGNED 3, PUBLISHED 4, CONFIRMED and FAILED 5 (final). An unknown
// status ranks 0.
func statusRank(s pb.RequestStatus) int {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_QUEUED, pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		return 1
	case pb.RequestStatus_REQUEST_STATUS_REFUSED:
		return 2
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		return 3
	case pb.RequestStatus_REQUEST_STATUS_PUBLISHED:
		return 4
	case pb.RequestStatus_REQUEST_STATUS_CONFIRMED, pb.RequestStatus_REQUEST_STATUS_FAILED:
		return finalRank
	}
	return 0
}

// checkStep returns the error of a change that took a record from status
// from to status to, or nil when statusStep allows it.
func checkStep(id string, from, to pb.RequestStatus) error {
	if statusStep(from, to) {
		return nil
	}
	return fmt.Errorf("%w: request %q from %s to %s", errStatusRegression, id, from, to)
}

// updateOne applies f to the record of id in the next group commit of st
// (a batch of one) and returns the record as stored; f returning an error
// leaves the record unchanged and is returned.
func updateOne(st store, id string, f func(e *entry) error) (*entry, error) {
	c := &change{id: id, f: f}
	if err := st.apply("update", []*change{c}, nil); err != nil {
		return nil, err
	}
	if errors.Is(c.err, errNoRecord) {
		return nil, fmt.Errorf("gateway: no request %q", id)
	}
	return c.out, c.err
}

// closeOpen removes id from st's open list (a request that needs nothing
// more from the send loop, such as one signed when there is no node, or
// one published, which stays on the publish list).
func closeOpen(st store, id string) error { return st.apply("close", nil, []string{id}) }

// Both stores implement store.
var (
	_ store = (*gatewayStore)(nil)
	_ store = (*pgStore)(nil)
)
