-- Git-backed content: the repository, branch and directory a content is
-- deployed from, whether the server polls the branch, and what it saw last.

-- +goose Up
CREATE TABLE content_repositories (
    content_id        BIGINT  PRIMARY KEY REFERENCES content (id) ON DELETE CASCADE,
    repository        TEXT    NOT NULL,
    branch            TEXT    NOT NULL,
    directory         TEXT    NOT NULL DEFAULT '.',
    polling           BOOLEAN NOT NULL DEFAULT FALSE,
    last_known_commit TEXT    NOT NULL DEFAULT '',
    last_error        TEXT    NOT NULL DEFAULT '',
    last_checked_at   BIGINT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE content_repositories;
