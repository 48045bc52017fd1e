-- The audit log (GET /__api__/v1/audit_logs) and the usage the proxy
-- records (GET /__api__/v1/instrumentation/...). Rows name users and
-- content by GUID and keep them after either is deleted, as Connect's do;
-- content_id is kept for the publisher's filter (their own content).

-- +goose Up
CREATE TABLE audit_logs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    time              INTEGER NOT NULL,
    user_id           INTEGER,
    user_guid         TEXT    NOT NULL DEFAULT '',
    user_description  TEXT    NOT NULL DEFAULT '',
    action            TEXT    NOT NULL,
    event_description TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_logs_time ON audit_logs (time);

CREATE TABLE content_visits (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id   INTEGER NOT NULL,
    content_guid TEXT    NOT NULL,
    user_guid    TEXT    NOT NULL DEFAULT '',
    bundle_id    INTEGER,
    rendering_id INTEGER,
    variant_key  TEXT    NOT NULL DEFAULT '',
    path         TEXT    NOT NULL DEFAULT '',
    time         INTEGER NOT NULL,
    data_version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX content_visits_time ON content_visits (time);
CREATE INDEX content_visits_content ON content_visits (content_guid, id);

CREATE TABLE shiny_usage (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    session_key  TEXT    NOT NULL UNIQUE,
    content_id   INTEGER NOT NULL,
    content_guid TEXT    NOT NULL,
    user_guid    TEXT    NOT NULL DEFAULT '',
    started      INTEGER NOT NULL,
    ended        INTEGER,
    data_version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX shiny_usage_started ON shiny_usage (started);
CREATE INDEX shiny_usage_content ON shiny_usage (content_guid, id);

-- +goose Down
DROP TABLE shiny_usage;
DROP TABLE content_visits;
DROP TABLE audit_logs;
