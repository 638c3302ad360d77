-- The gateway's state on PostgreSQL, version 2: the gateways sharing the
-- database hear of each other's changes (gateway/pglisten.go). Every
-- insert of a request, and every update that changes its record, notifies
-- the channel nanokms_gateway_requests, on commit, with
-- "<updated> <status> <record> <request_id>": the record in base64 (no
-- line breaks), or "-" when it would not fit a notification (under 8000
-- bytes; the listener then reads the row). Request ids hold no spaces.
-- Updates that leave the record as it was (the open list's closings, the
-- publish list's claims) notify nothing.
CREATE FUNCTION gateway_requests_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	rec text;
BEGIN
	IF TG_OP = 'UPDATE' AND NEW.record = OLD.record THEN
		RETURN NULL;
	END IF;
	rec := translate(encode(NEW.record, 'base64'), E'\n', '');
	IF length(rec) > 7000 THEN
		rec := '-';
	END IF;
	PERFORM pg_notify('nanokms_gateway_requests', NEW.updated || ' ' || NEW.status || ' ' || rec || ' ' || NEW.request_id);
	RETURN NULL;
END $$;
CREATE TRIGGER gateway_requests_notify AFTER INSERT OR UPDATE ON gateway_requests
	FOR EACH ROW EXECUTE FUNCTION gateway_requests_notify();
