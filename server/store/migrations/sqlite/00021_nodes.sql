-- dais:additive
-- The nodes of a cluster (issue 18): several dais servers on one
-- PostgreSQL. Each node registers under its name (DAIS_NODE_NAME, else the
-- hostname) and heartbeats; both times come from the database's clock, in
-- microseconds since the epoch, so no node trusts its own clock. settings
-- holds a digest of each setting that must agree across nodes (JSON),
-- config_digest one over all of them. Additive: an older dais ignores it.
-- (On SQLite, one server, the table stays empty.)

-- +goose Up
CREATE TABLE nodes (
    name           TEXT    PRIMARY KEY,
    instance_id    TEXT    NOT NULL,
    address        TEXT    NOT NULL DEFAULT '',
    version        TEXT    NOT NULL DEFAULT '',
    schema_version INTEGER NOT NULL DEFAULT 0,
    config_digest  TEXT    NOT NULL DEFAULT '',
    settings       TEXT    NOT NULL DEFAULT '{}',
    started_at     INTEGER NOT NULL,
    heartbeat_at   INTEGER NOT NULL,
    draining       INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE nodes;
