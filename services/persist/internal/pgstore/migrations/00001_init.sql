-- +goose Up
-- events mirrors the EVT stream. Partitioned by day on the event's own
-- timestamp (UTC); the primary key includes the partition key as Postgres
-- requires. seq is the EVT stream sequence: the identity of a row.
CREATE TABLE events (
    seq       bigint      NOT NULL,
    ts        timestamptz NOT NULL,
    zone      text        NOT NULL,
    logical   smallint    NOT NULL,
    event_id  text        NOT NULL,
    player_id text        NOT NULL DEFAULT '',
    type      text        NOT NULL,
    fence     bigint      NOT NULL DEFAULT 0,
    payload   bytea       NOT NULL,
    PRIMARY KEY (seq, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX events_zone_ts ON events (zone, ts, seq);
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- persist_hwm is the high-water mark: every events row of this database has
-- seq <= persist_hwm.seq. It is written in the same transaction as the rows.
CREATE TABLE persist_hwm (
    id  smallint PRIMARY KEY CHECK (id = 1),
    seq bigint   NOT NULL
);
INSERT INTO persist_hwm VALUES (1, 0);

-- shard_owner is the storage-side ownership record (SHARD-4): a writer
-- checks FOR SHARE that every logical shard it writes is 'owned' here.
CREATE TABLE shard_owner (
    logical     smallint PRIMARY KEY,
    state       text     NOT NULL CHECK (state IN ('owned', 'blocked', 'moved')),
    map_version bigint   NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE players (
    player_id text PRIMARY KEY,
    logical   smallint NOT NULL,
    name      text,
    zone      text,
    x         real,
    y         real,
    hp        integer,
    online    boolean,
    kills     bigint NOT NULL DEFAULT 0,
    deaths    bigint NOT NULL DEFAULT 0,
    last_seq  bigint NOT NULL DEFAULT 0,
    last_ts   timestamptz
);
CREATE INDEX players_logical ON players (logical);

CREATE TABLE player_tallies (
    player_id text     NOT NULL,
    seq       bigint   NOT NULL,
    kind      text     NOT NULL,
    logical   smallint NOT NULL,
    PRIMARY KEY (player_id, seq, kind)
);

CREATE TABLE zone_summaries (
    zone     text PRIMARY KEY,
    logical  smallint NOT NULL,
    events   bigint NOT NULL DEFAULT 0,
    last_seq bigint NOT NULL DEFAULT 0,
    last_ts  timestamptz,
    players  bigint NOT NULL DEFAULT 0,
    deaths   bigint NOT NULL DEFAULT 0
);

-- partman_state records the partition manager's last run (PART-11).
CREATE TABLE partman_state (
    parent       text PRIMARY KEY,
    last_run     timestamptz NOT NULL,
    default_rows bigint NOT NULL,
    days_ahead   integer NOT NULL,
    partitions   integer NOT NULL,
    detached     bigint NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE partman_state, zone_summaries, player_tallies, players, shard_owner, persist_hwm, events;
