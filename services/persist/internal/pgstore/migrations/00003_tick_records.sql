-- +goose Up
-- Tick records: one EVT message holds the events of one zone tick, so a
-- row is addressed by (seq, idx): the stream sequence of its message and
-- the event's position in it. Rows stored before are one event per message
-- and get idx 0. The unique key keeps the partition key (ts).
ALTER TABLE events ADD COLUMN idx integer NOT NULL DEFAULT 0;
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (seq, idx, ts);

-- Two kills in one tick are two tallies.
ALTER TABLE player_tallies ADD COLUMN idx integer NOT NULL DEFAULT 0;
ALTER TABLE player_tallies DROP CONSTRAINT player_tallies_pkey;
ALTER TABLE player_tallies ADD PRIMARY KEY (player_id, seq, idx, kind);

-- zone_members: whether a player is in a zone, as of the event (seq) that
-- last changed it; taken only from a higher seq (order-independent). The
-- zone summary's players is the count of present rows, so a re-join of a
-- player already present does not count twice (issue 10 #10). It lives on
-- the zone's shard (logical = the zone's logical shard).
CREATE TABLE zone_members (
    zone      text     NOT NULL,
    player_id text     NOT NULL,
    logical   smallint NOT NULL,
    present   boolean  NOT NULL,
    seq       bigint   NOT NULL,
    PRIMARY KEY (zone, player_id)
);
CREATE INDEX zone_members_logical ON zone_members (logical);
INSERT INTO zone_members (zone, player_id, logical, present, seq)
SELECT DISTINCT ON (zone, player_id) zone, player_id, logical,
       type IN ('player_joined', 'transfer_accepted'), seq
FROM events
WHERE player_id <> '' AND type IN ('player_joined', 'transfer_accepted', 'player_left', 'transfer_out')
ORDER BY zone, player_id, seq DESC, idx DESC;
UPDATE zone_summaries z SET players = (SELECT count(*) FROM zone_members m WHERE m.zone = z.zone AND m.present);

-- +goose Down
DROP TABLE zone_members;
ALTER TABLE player_tallies DROP CONSTRAINT player_tallies_pkey;
ALTER TABLE player_tallies ADD PRIMARY KEY (player_id, seq, kind);
ALTER TABLE player_tallies DROP COLUMN idx;
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (seq, ts);
ALTER TABLE events DROP COLUMN idx;
