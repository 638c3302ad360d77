-- Version 2: a database can be retired (signer/retire.go). A retiring
-- state export ('signer state export --retire') sets these in the
-- transaction that reads the state and appends the "retired" audit record
-- (retired_seq); from then on every decision transaction, which reads this
-- row first, commits nothing, and a signer does not start on the database.
-- An import of a retiring export clears them.
ALTER TABLE signer_audit_head
	ADD COLUMN retired_at  bigint,
	ADD COLUMN retired_seq bigint,
	ADD COLUMN retired_to  text,
	ADD CONSTRAINT signer_audit_head_retired CHECK (
		(retired_at IS NULL AND retired_seq IS NULL AND retired_to IS NULL) OR
		(retired_at IS NOT NULL AND retired_seq IS NOT NULL AND retired_to IS NOT NULL));
