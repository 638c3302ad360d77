package gateway

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The gateway's events: request state changes for watchers and the
// observer, and critical alerts.

// Watch returns the request's current state and a channel of its later
// states, closed after a final one or when cancel is called.
func (g *Gateway) Watch(id string) (*pb.Request, <-chan *pb.Request, func(), error) {
	ch := make(chan *pb.Request, 16)
	g.mu.Lock()
	g.watchers[id] = append(g.watchers[id], ch)
	g.mu.Unlock()
	cancel := func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		list := g.watchers[id]
		for i, c := range list {
			if c == ch {
				g.watchers[id] = append(list[:i], list[i+1:]...)
				close(ch)
				break
			}
		}
		if len(g.watchers[id]) == 0 {
			delete(g.watchers, id)
		}
	}
	cur, err := g.Get(id)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return cur, ch, cancel, nil
}

// changed tells watchers and the observer about a new state.
func (g *Gateway) changed(r *pb.Request) {
	if g.observe != nil {
		g.observe(r.GetStatus(), r)
	}
	g.tell(r)
}

// tell sends a new state to the request's watchers.
func (g *Gateway) tell(r *pb.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, ch := range g.watchers[r.GetRequestId()] {
		select {
		case ch <- proto.Clone(r).(*pb.Request):
		default:
			// A watcher that does not keep up misses intermediate states;
			// the final one is also readable with Get.
		}
	}
}

// Alerts returns a channel of critical alerts and its cancel function.
func (g *Gateway) Alerts() (<-chan *pb.Alert, func()) {
	ch := make(chan *pb.Alert, 16)
	g.mu.Lock()
	g.alerts = append(g.alerts, ch)
	g.mu.Unlock()
	return ch, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for i, c := range g.alerts {
			if c == ch {
				g.alerts = append(g.alerts[:i], g.alerts[i+1:]...)
				close(ch)
				return
			}
		}
	}
}

// Alert raises a critical alert: it is logged and sent to every watcher,
// and (several gateways on one database) to the other gateways' watchers.
func (g *Gateway) Alert(a *pb.Alert) {
	if a.GetTimeUnixNano() == 0 {
		a.TimeUnixNano = g.now().UnixNano()
	}
	account := fmt.Sprintf("%X", a.GetAccount())
	if len(a.GetAccount()) == len(nano.PublicKey{}) {
		account = nano.PublicKey(a.GetAccount()).Address()
	}
	g.log.Error("ALERT", "kind", a.GetKind(), "account", account,
		"block", fmt.Sprintf("%X", a.GetBlockHash()), "detail", a.GetDetail())
	if g.onAlert != nil {
		g.onAlert(a)
	}
	g.notifyAlert(a)
	g.tellAlert(a)
}

// tellAlert sends an alert to this gateway's alert watchers.
func (g *Gateway) tellAlert(a *pb.Alert) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, ch := range g.alerts {
		select {
		case ch <- a:
		default:
		}
	}
}
