-- berth metadata, version 8: each event's size, so the log is capped by bytes as well as by
-- count (a few large container updates could otherwise grow meta.db by gigabytes). The
-- index lets pruning add sizes newest-first without reading the events themselves.
ALTER TABLE events ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE events SET bytes = length(CAST(event AS BLOB));
CREATE INDEX events_by_seq_bytes ON events (seq, bytes);
