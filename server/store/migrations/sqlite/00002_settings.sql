-- Server-wide settings shared by all nodes (secrets generated once, ...),
-- and indexes for the lifecycle queries run at every start and stop.

-- +goose Up
CREATE TABLE settings (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX tasks_created ON tasks (created_at);
CREATE INDEX renders_node_status ON renders (node, status);

-- +goose Down
DROP INDEX renders_node_status;
DROP INDEX tasks_created;
DROP TABLE settings;
