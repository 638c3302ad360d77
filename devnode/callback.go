package devnode

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// callbackBody is the node's HTTP callback body for a confirmed block:
// account, hash, block (a JSON string), amount, and for a send "is_send"
// and "subtype".
func callbackBody(r *record) []byte {
	o := object{
		{"account", r.block.Account.Address()},
		{"hash", r.hash.String()},
		{"block", blockString(&r.block)},
		{"amount", r.amount.String()},
	}
	if r.subtype == nano.SubtypeSend {
		o = append(o, member{"is_send", "true"}, member{"subtype", "send"})
	}
	return mustMarshal(o)
}

// callbacker posts callback bodies in order, one at a time, on its own
// goroutine; a full queue drops (callbacks are best effort, as the node's).
type callbacker struct {
	url    string
	log    *slog.Logger
	client *http.Client
	ch     chan []byte
	wg     sync.WaitGroup
	once   sync.Once
	stop   chan struct{}
}

func newCallbacker(url string, log *slog.Logger) *callbacker {
	c := &callbacker{
		url:    url,
		log:    log,
		client: &http.Client{Timeout: 5 * time.Second},
		ch:     make(chan []byte, 1024),
		stop:   make(chan struct{}),
	}
	c.wg.Add(1)
	go c.run()
	return c
}

func (c *callbacker) post(body []byte) {
	select {
	case c.ch <- body:
	default:
		c.log.Warn("callback queue full; notification dropped")
	}
}

func (c *callbacker) run() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case body := <-c.ch:
			c.send(body)
		}
	}
}

func (c *callbacker) send(body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		c.log.Warn("callback request", "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		c.log.Warn("callback failed", "err", err)
		return
	}
	resp.Body.Close()
}

func (c *callbacker) close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}
