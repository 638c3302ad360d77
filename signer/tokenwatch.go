package signer

import (
	"context"
	"log/slog"
	"time"

	"github.com/nanokms/nanokms/internal/keystore"
)

// TokenMonitor is what the server follows of a key store whose token can
// go away and come back (the binary wires in an *hsm.Token): whether it
// is available now and a channel closed when its status changes, the
// status (the key store contract's), and a look at the token now (Check:
// nil if usable; otherwise the token turns unavailable). Serve uses it
// when the Signer's KeyStore implements it.
type TokenMonitor interface {
	Available() (ok bool, changed <-chan struct{})
	Status() keystore.TokenStatus
	Check(ctx context.Context) error
}

// defaultTokenCheck is how often an available token is looked at by
// default.
const defaultTokenCheck = 10 * time.Second

// watchToken follows the token until ctx ends: it logs each change (the
// token gone, the cause changing while it reconnects, a refused PIN, the
// token back), tells observe (when set) of every status, and while the
// token is available looks at it every interval, so that a token that
// went away is noticed (and the health service says so) even when no
// request comes.
func watchToken(ctx context.Context, tm TokenMonitor, interval time.Duration, log *slog.Logger, observe func(keystore.TokenStatus)) {
	prev := keystore.TokenStatus{Available: true}
	cause := ""
	for {
		ok, changed := tm.Available()
		st := tm.Status()
		if observe != nil {
			observe(st)
		}
		switch {
		case st.Final && !prev.Final:
			log.Error("the token refused the PIN when the signer logged in to it again: the PIN is not sent again (the token would lock); "+
				"nothing is signed and the health service reports NOT_SERVING until an operator fixes the PIN (token.pin_file or token.pin_env) and restarts the signer",
				"error", errText(st.Cause))
		case !st.Available && prev.Available:
			log.Error("token unavailable: nothing is signed until it is back (requests get UNAVAILABLE, the health service reports NOT_SERVING); reconnecting",
				"error", errText(st.Cause))
		case !st.Available && !st.Final && errText(st.Cause) != cause:
			log.Warn("token still unavailable; reconnecting", "attempts", st.Attempts, "error", errText(st.Cause))
		case st.Available && !prev.Available:
			log.Info("token available again: signing resumes", "losses", st.Losses, "fresh_module_instances", st.Reloads)
		}
		prev, cause = st, errText(st.Cause)
		if st.Final {
			// Nothing changes any more; keep the status observed.
			select {
			case <-ctx.Done():
			case <-changed:
				continue
			}
			return
		}
		var tick <-chan time.Time
		var timer *time.Timer
		if ok {
			timer = time.NewTimer(interval)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-tick:
			// A token that is gone turns unavailable: changed says so.
			_ = tm.Check(ctx)
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
