-- The gateway's state on PostgreSQL (gateway/pgstore.go), version 1.
-- The constraints and triggers below hold whatever a gateway does: a
-- request id is stored once, a status only moves forward, a signed
-- block's hash is recorded once, and nothing is deleted.

-- Every insert and update of a request takes the next value: a reader
-- that remembers the last it saw finds what changed since.
CREATE SEQUENCE gateway_updated_seq;

-- The rank of a status (pb.RequestStatus), as the gateway's statusRank:
-- QUEUED (1) and SENT_TO_COLD (2) rank 1, REFUSED (4) 2, SIGNED (3) 3,
-- PUBLISHED (5) 4, CONFIRMED (6) and FAILED (7) 5, the final rank.
CREATE FUNCTION gateway_status_rank(s smallint) RETURNS smallint
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE s WHEN 1 THEN 1 WHEN 2 THEN 1 WHEN 4 THEN 2 WHEN 3 THEN 3
		WHEN 5 THEN 4 WHEN 6 THEN 5 WHEN 7 THEN 5 ELSE 0 END;

-- Whether a request may go from status f to status t: forward only by
-- rank, and nothing leaves a final status (the gateway's statusStep).
CREATE FUNCTION gateway_status_step(f smallint, t smallint) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN f = t OR (gateway_status_rank(f) < 5 AND gateway_status_rank(t) >= gateway_status_rank(f));

-- One row per request: its record (gateway_record.go's binary form) and,
-- beside it, what the work lists and the readers select on. open: the
-- send loop's list (not final); publishing: the publish pipeline's
-- (signed or published, not final, with a node). epoch is the leader
-- epoch of the gateway that last claimed the row (0: none), for several
-- gateways on one database.
CREATE TABLE gateway_requests (
	request_id text     PRIMARY KEY CHECK (request_id <> ''),
	status     smallint NOT NULL CHECK (status BETWEEN 1 AND 7),
	account    bytea    NOT NULL CHECK (length(account) IN (0, 32)),
	submitted  bigint   NOT NULL, -- Unix ns
	last_sent  bigint   NOT NULL DEFAULT 0, -- Unix ns; 0: never
	open       boolean  NOT NULL,
	publishing boolean  NOT NULL,
	record     bytea    NOT NULL,
	updated    bigint   NOT NULL DEFAULT nextval('gateway_updated_seq'),
	epoch      bigint   NOT NULL DEFAULT 0 CHECK (epoch >= 0),
	CHECK (NOT (open AND gateway_status_rank(status) = 5)),
	CHECK (NOT (publishing AND gateway_status_rank(status) = 5))
);
CREATE INDEX gateway_requests_open ON gateway_requests (request_id) WHERE open;
CREATE INDEX gateway_requests_publishing ON gateway_requests (request_id) WHERE publishing;
CREATE INDEX gateway_requests_updated ON gateway_requests (updated);

-- A status that goes back, a request id that changes and a deletion are
-- refused (SQLSTATE 23514, check_violation), whoever writes.
CREATE FUNCTION gateway_requests_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		RAISE EXCEPTION 'gateway: request % may not be deleted', OLD.request_id USING ERRCODE = 'check_violation';
	END IF;
	IF NEW.request_id <> OLD.request_id THEN
		RAISE EXCEPTION 'gateway: request % may not change its id', OLD.request_id USING ERRCODE = 'check_violation';
	END IF;
	IF NOT gateway_status_step(OLD.status, NEW.status) THEN
		RAISE EXCEPTION 'gateway: request % may not go from status % to %', OLD.request_id, OLD.status, NEW.status
			USING ERRCODE = 'check_violation';
	END IF;
	NEW.updated := nextval('gateway_updated_seq');
	RETURN NEW;
END $$;
CREATE TRIGGER gateway_requests_guard BEFORE UPDATE OR DELETE ON gateway_requests
	FOR EACH ROW EXECUTE FUNCTION gateway_requests_guard();

-- Every block the cold side signed, recorded once, under the request it
-- was signed for; never changed or deleted.
CREATE TABLE gateway_signed (
	hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
	request_id text  NOT NULL REFERENCES gateway_requests (request_id)
);
CREATE FUNCTION gateway_signed_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'gateway: a signed block''s record may not change' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER gateway_signed_guard BEFORE UPDATE OR DELETE ON gateway_signed
	FOR EACH ROW EXECUTE FUNCTION gateway_signed_guard();

-- One row the gateway writes to find out whether the database takes
-- writes again (probe).
CREATE TABLE gateway_probe (
	one boolean     PRIMARY KEY DEFAULT true CHECK (one),
	at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO gateway_probe DEFAULT VALUES;
