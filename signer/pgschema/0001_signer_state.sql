-- The signer's state on PostgreSQL (signer/pgstore.go), version 1.
-- Several signers share these tables; the constraints are the authority
-- against forks, whatever the signers do.

-- One row per tracked account: its record at its current frontier
-- (AccountRecord.MarshalBinary, record.go), and the frontier's hash (32
-- zero bytes when unopened), which a decision compares and sets.
CREATE TABLE signer_accounts (
	account  bytea PRIMARY KEY CHECK (length(account) = 32),
	frontier bytea NOT NULL CHECK (length(frontier) = 32),
	record   bytea NOT NULL
);

-- The blocks signed: at most one per (account, previous). A release of
-- the block deletes its row (the fork the operator approved).
CREATE TABLE signer_signed (
	account    bytea NOT NULL CHECK (length(account) = 32),
	previous   bytea NOT NULL CHECK (length(previous) = 32),
	hash       bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
	request_id text  NOT NULL,
	record     bytea NOT NULL, -- SignedBlock.MarshalBinary
	PRIMARY KEY (account, previous)
);

-- One answer per request id: the intent's digest and the SignResponse
-- as first answered (protobuf), returned byte for byte to a repeat.
CREATE TABLE signer_requests (
	request_id    text  PRIMARY KEY,
	intent_digest bytea NOT NULL CHECK (length(intent_digest) = 32),
	response      bytea NOT NULL
);

-- The sources received into each account.
CREATE TABLE signer_received (
	account    bytea NOT NULL CHECK (length(account) = 32),
	source     bytea NOT NULL CHECK (length(source) = 32),
	request_id text  NOT NULL,
	PRIMARY KEY (account, source)
);

-- The velocity window: one row per send signed (amount: 16 bytes,
-- big-endian raw).
CREATE TABLE signer_velocity (
	account      bytea  NOT NULL CHECK (length(account) = 32),
	at_unix_nano bigint NOT NULL,
	hash         bytea  NOT NULL CHECK (length(hash) = 32),
	amount       bytea  NOT NULL CHECK (length(amount) = 16),
	PRIMARY KEY (account, at_unix_nano, hash)
);

-- The audit chain of every signer on the database: one chain. Each
-- record is the AuditRecord protobuf with its seq, prev_hash and hash.
CREATE TABLE signer_audit (
	seq    bigint PRIMARY KEY CHECK (seq > 0),
	hash   bytea  NOT NULL CHECK (length(hash) = 32),
	record bytea  NOT NULL
);

-- The chain's head: the last seq and its hash, one row, updated by the
-- transaction that appends (so that appends of all signers serialise).
CREATE TABLE signer_audit_head (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq  bigint  NOT NULL CHECK (seq >= 0),
	hash bytea   NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO signer_audit_head (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Releases (release_store.go): the request ids whose block was withdrawn,
-- and the statements applied.
CREATE TABLE signer_released (
	request_id text   PRIMARY KEY,
	audit_seq  bigint NOT NULL,
	block      bytea  NOT NULL CHECK (length(block) = 32)
);
CREATE TABLE signer_releases (
	digest    bytea  PRIMARY KEY CHECK (length(digest) = 32),
	audit_seq bigint NOT NULL
);
