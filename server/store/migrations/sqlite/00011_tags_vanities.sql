-- Tags (a tree: a tag may have a parent) on content, and vanity paths
-- (issue 14). A tag's name is unique among its siblings; deleting a tag
-- deletes the tags below it. A content has at most one vanity path, and a
-- path belongs to at most one content (paths that are prefixes of one
-- another are refused by the store too, under a lock).

-- +goose Up
CREATE TABLE tags (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    parent_id  INTEGER REFERENCES tags (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX tags_sibling_name ON tags (COALESCE(parent_id, 0), name);
CREATE INDEX tags_parent ON tags (parent_id);

CREATE TABLE content_tags (
    content_id INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    tag_id     INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (content_id, tag_id)
);
CREATE INDEX content_tags_tag ON content_tags (tag_id);

CREATE TABLE vanities (
    content_id INTEGER PRIMARY KEY REFERENCES content (id) ON DELETE CASCADE,
    path       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE vanities;
DROP TABLE content_tags;
DROP TABLE tags;
