// Package leader elects, among the gateways sharing one PostgreSQL
// database, the one that drives a bridge medium, and gives each term of
// leadership an epoch (a fencing token) that the leader's writes carry.
//
// # Election
//
// An Elector campaigns for one medium on a connection of its own. The
// medium's advisory lock is the two-key form pg_try_advisory_lock(ns,
// key), where ns is the fixed LockNamespace and key FNV-1a-32 of the
// medium's name as an int32 (LockKey). PostgreSQL keeps
// the one-bigint and the two-int4 lock keys apart, so these never meet the
// locks pgmigrate takes (one bigint); two media whose names hash alike
// would share one lock, which costs availability (one gateway at a time
// for both) but never safety, since the epoch row is keyed by the full
// name. The lock is polled with pg_try_advisory_lock every CheckInterval
// rather than waited for with pg_advisory_lock: a candidate never sits in
// a lock wait that only a cancel request on another connection could end,
// it notices a lost database within one poll, and ctx ends a campaign at
// once.
//
// Holding the lock, the Elector increments the medium's epoch in
// gateway_leader (medium, epoch, holder, since) in one transaction and
// calls the leader's function with the Lease and a context that is
// cancelled the moment leadership is lost: the lock's connection reports
// an error (its backend terminated, the server shut down or gone), or a
// check (every CheckInterval: the lock still held and the epoch still
// ours) fails or does not answer within CheckTimeout. The session's end
// releases the lock; when the function returns, the Elector closes the
// connection (releasing it) and campaigns again, until Run's ctx ends.
//
// # Fencing
//
// Leadership as each gateway sees it is not exclusive in time: a leader
// whose backend was terminated learns it only when its connection says so,
// and by then another may lead. What is exclusive is the writes: every
// transaction the medium's driver commits calls Fence first, which takes
// the medium's row FOR SHARE and fails with ErrDeposed unless the epoch is
// the caller's. A new term's increment waits for those transactions and
// every later fenced transaction of an older epoch fails, so the store
// sees the writes of each epoch before those of the next, and none from a
// deposed leader afterwards. Frames carry the epoch too, so the relay
// refuses a deposed leader's late frames (FRAMES.md).
//
// # Schema
//
// The table is versioned SQL embedded in the package (schema/), applied
// forward-only by internal/pgmigrate under the component name
// "gateway_leader" in the shared nanokms_schema table, beside the
// gateway's store and the signer's components in the same database. Run
// applies it on its first connection; Migrate does it for callers that
// fence before an Elector has run. A database whose gateway_leader schema
// is newer than this binary's is refused (pgmigrate.ErrNewer).
//
// It must never: run the leader's function while another term of the
// same Elector runs, log the connection string (it may hold a password),
// or treat a write as fenced without Fence in the same transaction.
package leader
