-- Git-backed content: the repository, branch and directory a content is
-- deployed from, whether the server polls the branch, and what it saw last.

-- +goose Up
CREATE TABLE content_repositories (
    content_id        INTEGER PRIMARY KEY REFERENCES content (id) ON DELETE CASCADE,
    repository        TEXT    NOT NULL,
    branch            TEXT    NOT NULL,
    directory         TEXT    NOT NULL DEFAULT '.',
    polling           INTEGER NOT NULL DEFAULT 0,
    last_known_commit TEXT    NOT NULL DEFAULT '',
    last_error        TEXT    NOT NULL DEFAULT '',
    last_checked_at   INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- +goose Down
DROP TABLE content_repositories;
