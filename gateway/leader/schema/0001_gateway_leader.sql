-- The leader epoch of each bridge medium (package gateway/leader). A row is
-- made by the first gateway that leads the medium, with epoch 1; each new
-- term of leadership increments epoch in one transaction, under the
-- medium's advisory lock. Epochs never go down: a row is never deleted.
CREATE TABLE gateway_leader (
	medium text PRIMARY KEY CHECK (medium <> ''),
	epoch  bigint NOT NULL CHECK (epoch > 0),
	holder text NOT NULL,
	since  timestamptz NOT NULL
);
