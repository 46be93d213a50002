-- +goose Up
-- Field-wise monotone player rows: each field group keeps the stream
-- sequence of the event that last set it, and takes a new value only from a
-- higher one, so batches committed in any order (two replicas, redelivery)
-- give the in-order fold. Rows stored before this were whole-row
-- last-writer-wins at last_seq.
ALTER TABLE players
    ADD COLUMN name_seq   bigint NOT NULL DEFAULT 0,
    ADD COLUMN zone_seq   bigint NOT NULL DEFAULT 0,
    ADD COLUMN pos_seq    bigint NOT NULL DEFAULT 0,
    ADD COLUMN hp_seq     bigint NOT NULL DEFAULT 0,
    ADD COLUMN online_seq bigint NOT NULL DEFAULT 0;
UPDATE players SET name_seq = last_seq, zone_seq = last_seq, pos_seq = last_seq,
    hp_seq = last_seq, online_seq = last_seq WHERE last_seq > 0;

-- +goose Down
ALTER TABLE players DROP COLUMN name_seq, DROP COLUMN zone_seq, DROP COLUMN pos_seq,
    DROP COLUMN hp_seq, DROP COLUMN online_seq;
