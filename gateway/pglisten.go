package gateway

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/internal/backoff"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Hearing the other gateways on one database. Each gateway of several
// (Options.Elector) listens, on a connection of its own, to two channels:
//
//   - nanokms_gateway_requests: every committed change of a request's
//     record (the trigger of pgschema/0002_gateway_notify.sql), from
//     whichever gateway made it. The listener tells this gateway's
//     watchers of the request the record as that change left it (a
//     change this gateway made reaches its watchers again: a repeat of a
//     state they have, which WatchRequest does not send twice), and
//     wakes the send loop for a request queued (a submission on another
//     gateway reaches the leader's send loop at once).
//   - nanokms_gateway_alerts: the alerts raised by the other gateways,
//     "<instance> <alert in base64>", told to this gateway's alert
//     watchers only (the gateway that raised one has logged and counted
//     it).
//
// After the listener's connection is lost it connects again with backoff
// and, listening again, catches up: every request changed since the
// highest change it saw (the column updated, one sequence), and every
// request watched here, are read and told as above, so that a watcher
// misses no final state.

// The notification channels.
const (
	pgRequestsChannel = "nanokms_gateway_requests"
	pgAlertsChannel   = "nanokms_gateway_alerts"
)

// maxAlertNote bounds an alert notification's payload (PostgreSQL's
// limit is 8000 bytes).
const maxAlertNote = 7800

// listen listens to the other gateways until ctx is done.
func (g *Gateway) listen(ctx context.Context, s *pgStore) {
	b := &backoff.Capped{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	var last int64 = -1 // the highest updated seen; -1: none yet
	for ctx.Err() == nil {
		err := g.listenOnce(ctx, s, &last, b)
		if ctx.Err() != nil {
			return
		}
		wait := b.Next()
		g.log.Warn("listening to the other gateways failed; connecting again", "error", err.Error(), "wait", wait.String())
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// listenOnce connects, listens, catches up from *last and tells the
// notifications until the connection fails or ctx ends.
func (g *Gateway) listenOnce(ctx context.Context, s *pgStore, last *int64, b *backoff.Capped) error {
	if g.beforeListen != nil {
		g.beforeListen(ctx)
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	lc := s.listenCfg.Copy()
	lc.RuntimeParams["application_name"] = pgListenerApp + " " + g.instance
	conn, err := pgx.ConnectConfig(cctx, lc)
	if err != nil {
		return fmt.Errorf("gateway: the listener's connection: %w", pgWrap(err))
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	}()
	if _, err := conn.Exec(cctx, "LISTEN "+pgRequestsChannel+"; LISTEN "+pgAlertsChannel); err != nil {
		return fmt.Errorf("gateway: listening: %w", pgWrap(err))
	}
	if err := g.catchUp(cctx, conn, last); err != nil {
		return err
	}
	cancel()
	b.Reset()
	if g.onListening != nil {
		g.onListening()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("gateway: waiting for notifications: %w", pgWrap(err))
		}
		switch n.Channel {
		case pgRequestsChannel:
			g.heardRequest(n.Payload, last)
		case pgAlertsChannel:
			g.heardAlert(n.Payload)
		}
	}
}

// catchUp, listening, reads what changed since *last (on the first
// connection: only where the sequence is, nobody having heard anything
// yet) and the requests watched here (a watch may have begun before the
// first connection, or while the listener was away).
func (g *Gateway) catchUp(ctx context.Context, conn *pgx.Conn, last *int64) error {
	if *last < 0 {
		if err := conn.QueryRow(ctx, "SELECT coalesce(max(updated), 0) FROM gateway_requests").Scan(last); err != nil {
			return fmt.Errorf("gateway: catching up: %w", pgWrap(err))
		}
	}
	g.mu.Lock()
	watched := make([]string, 0, len(g.watchers))
	for id := range g.watchers {
		watched = append(watched, id)
	}
	g.mu.Unlock()
	rows, err := conn.Query(ctx, `SELECT updated, status, record, request_id FROM gateway_requests
		WHERE updated > $1 OR request_id = ANY($2) ORDER BY updated`, *last, watched)
	if err != nil {
		return fmt.Errorf("gateway: catching up: %w", pgWrap(err))
	}
	type row struct {
		updated int64
		status  int16
		record  []byte
		id      string
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.updated, &x.status, &x.record, &x.id)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("gateway: catching up: %w", pgWrap(err))
	}
	for _, r := range got {
		g.heard(r.id, pb.RequestStatus(r.status), r.updated, r.record, last)
	}
	g.wake()
	return nil
}

// heardRequest handles a notification of nanokms_gateway_requests.
func (g *Gateway) heardRequest(payload string, last *int64) {
	parts := strings.SplitN(payload, " ", 4)
	if len(parts) != 4 {
		g.log.Warn("a request notification of another form", "payload_bytes", len(payload))
		return
	}
	updated, err1 := strconv.ParseInt(parts[0], 10, 64)
	status, err2 := strconv.ParseInt(parts[1], 10, 16)
	if err1 != nil || err2 != nil {
		g.log.Warn("a request notification of another form", "payload_bytes", len(payload))
		return
	}
	var record []byte
	if parts[2] != "-" {
		var err error
		if record, err = base64.StdEncoding.DecodeString(parts[2]); err != nil {
			g.log.Warn("a request notification of another form", "payload_bytes", len(payload))
			return
		}
	}
	g.heard(parts[3], pb.RequestStatus(status), updated, record, last)
}

// heard tells of a change to request id (its record as the change left
// it, or nil: read the request's as it is): the send loop is woken for a
// request queued, the watchers are told.
func (g *Gateway) heard(id string, status pb.RequestStatus, updated int64, record []byte, last *int64) {
	*last = max(*last, updated)
	if status == pb.RequestStatus_REQUEST_STATUS_QUEUED {
		g.wake()
	}
	g.mu.Lock()
	watched := len(g.watchers[id]) > 0
	g.mu.Unlock()
	if !watched {
		return
	}
	var (
		e   *entry
		err error
	)
	if record != nil {
		e, err = decodeRecord(record)
	} else {
		var ok bool
		if e, ok, err = g.store.get(id); err == nil && !ok {
			return
		}
	}
	if err != nil {
		g.log.Warn("reading a request another gateway changed", "request_id", id, "error", err.Error())
		return
	}
	g.tell(e.view)
}

// notifyAlert passes an alert this gateway raised on to the other
// gateways on its database; its detail is cut short if the notification
// would be too long.
func (g *Gateway) notifyAlert(a *pb.Alert) {
	s, ok := g.store.(*pgStore)
	if g.elector == nil || !ok {
		return
	}
	a = proto.Clone(a).(*pb.Alert)
	var payload string
	for {
		data, err := proto.Marshal(a)
		if err != nil {
			return
		}
		payload = g.instance + " " + base64.StdEncoding.EncodeToString(data)
		if len(payload) <= maxAlertNote || len(a.Detail) == 0 {
			break
		}
		a.Detail = a.Detail[:len(a.Detail)/2] + "…"
	}
	err := s.read(func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", pgAlertsChannel, payload)
		return err
	})
	if err != nil {
		g.log.Warn("the other gateways were not told of an alert", "kind", a.GetKind(), "error", err.Error())
	}
}

// heardAlert handles a notification of nanokms_gateway_alerts: another
// gateway's alert is told to this gateway's alert watchers.
func (g *Gateway) heardAlert(payload string) {
	from, data, ok := strings.Cut(payload, " ")
	if !ok || from == g.instance {
		return
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	var a pb.Alert
	if err == nil {
		err = proto.Unmarshal(raw, &a)
	}
	if err != nil {
		g.log.Warn("an alert notification of another form", "payload_bytes", len(payload))
		return
	}
	g.tellAlert(&a)
}
