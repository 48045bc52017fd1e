-- Initial schema. Times are unix microseconds (UTC), NULL when unset.

-- +goose Up
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    guid          TEXT    NOT NULL UNIQUE,
    username      TEXT    NOT NULL UNIQUE,
    first_name    TEXT    NOT NULL DEFAULT '',
    last_name     TEXT    NOT NULL DEFAULT '',
    email         TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'publisher', 'administrator')),
    password_hash TEXT    NOT NULL DEFAULT '',
    locked        INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_login_at INTEGER
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL DEFAULT '',
    hash         TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE content (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    guid                  TEXT    NOT NULL UNIQUE,
    name                  TEXT    NOT NULL,
    title                 TEXT    NOT NULL DEFAULT '',
    description           TEXT    NOT NULL DEFAULT '',
    owner_id              INTEGER NOT NULL REFERENCES users (id),
    access_type           TEXT    NOT NULL DEFAULT 'acl' CHECK (access_type IN ('all', 'logged_in', 'acl')),
    app_mode              TEXT    NOT NULL DEFAULT '',
    min_processes         INTEGER,
    max_processes         INTEGER,
    max_conns_per_process INTEGER,
    idle_timeout          INTEGER,
    init_timeout          INTEGER,
    bundle_id             INTEGER,
    r_version             TEXT    NOT NULL DEFAULT '',
    py_version            TEXT    NOT NULL DEFAULT '',
    quarto_version        TEXT    NOT NULL DEFAULT '',
    run_as                TEXT    NOT NULL DEFAULT '',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    UNIQUE (owner_id, name)
);
CREATE INDEX content_name ON content (name);

CREATE TABLE content_env (
    content_id INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (content_id, name)
);

CREATE TABLE permissions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'owner')),
    UNIQUE (content_id, user_id)
);

CREATE TABLE bundles (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    path       TEXT    NOT NULL DEFAULT '',
    size       INTEGER NOT NULL DEFAULT 0,
    manifest   TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX bundles_content ON bundles (content_id);

CREATE TABLE tasks (
    id           TEXT    PRIMARY KEY,
    content_id   INTEGER REFERENCES content (id) ON DELETE CASCADE,
    bundle_id    INTEGER,
    user_id      INTEGER REFERENCES users (id) ON DELETE SET NULL,
    kind         TEXT    NOT NULL,
    finished     INTEGER NOT NULL DEFAULT 0,
    code         INTEGER NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT '',
    result       TEXT,
    node         TEXT    NOT NULL DEFAULT '',
    output_count INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX tasks_content ON tasks (content_id);
CREATE INDEX tasks_unfinished ON tasks (finished, node);

CREATE TABLE task_output (
    task_id TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    line    TEXT    NOT NULL,
    PRIMARY KEY (task_id, idx)
);

CREATE TABLE renders (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id  INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    bundle_id   INTEGER NOT NULL DEFAULT 0,
    task_id     TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    output_dir  TEXT    NOT NULL DEFAULT '',
    node        TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX renders_content ON renders (content_id, status);

CREATE TABLE schedules (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id       INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    cron             TEXT    NOT NULL DEFAULT '',
    interval_seconds INTEGER NOT NULL DEFAULT 0,
    timezone         TEXT    NOT NULL DEFAULT '',
    enabled          INTEGER NOT NULL DEFAULT 1,
    next_run_at      INTEGER NOT NULL,
    last_run_at      INTEGER,
    last_node        TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX schedules_due ON schedules (enabled, next_run_at);

CREATE TABLE jobs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT    NOT NULL UNIQUE,
    content_id INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    bundle_id  INTEGER NOT NULL DEFAULT 0,
    tag        TEXT    NOT NULL DEFAULT '',
    pid        INTEGER NOT NULL DEFAULT 0,
    node       TEXT    NOT NULL DEFAULT '',
    log_path   TEXT    NOT NULL DEFAULT '',
    exit_code  INTEGER,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX jobs_content ON jobs (content_id);

-- +goose Down
DROP TABLE jobs;
DROP TABLE schedules;
DROP TABLE renders;
DROP TABLE task_output;
DROP TABLE tasks;
DROP TABLE bundles;
DROP TABLE permissions;
DROP TABLE content_env;
DROP TABLE content;
DROP TABLE sessions;
DROP TABLE api_keys;
DROP TABLE users;
