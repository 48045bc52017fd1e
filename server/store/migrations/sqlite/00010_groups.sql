-- Groups of users, and groups in content permissions (issue 14).
--
-- A group is local (created through the API, provider 'local', unique_id its
-- guid) or comes from an authentication provider (provider names it,
-- unique_id is the provider's own id, stable across renames), so that a
-- provider can find and sync its groups. Names are unique, as Connect's are.
--
-- A permission names either a user or a group: SQLite cannot drop NOT NULL
-- from permissions.user_id, so the table is rebuilt with its ids kept.

-- +goose Up
CREATE TABLE groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    guid       TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL UNIQUE,
    owner_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    provider   TEXT    NOT NULL DEFAULT 'local',
    unique_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (provider, unique_id)
);

CREATE TABLE group_members (
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE permissions_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    user_id    INTEGER REFERENCES users (id) ON DELETE CASCADE,
    group_id   INTEGER REFERENCES groups (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'owner')),
    CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    UNIQUE (content_id, user_id),
    UNIQUE (content_id, group_id)
);
INSERT INTO permissions_new (id, content_id, user_id, role) SELECT id, content_id, user_id, role FROM permissions;
DROP TABLE permissions;
ALTER TABLE permissions_new RENAME TO permissions;
CREATE INDEX permissions_group ON permissions (group_id);

-- +goose Down
CREATE TABLE permissions_old (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id INTEGER NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'owner')),
    UNIQUE (content_id, user_id)
);
INSERT INTO permissions_old (id, content_id, user_id, role)
    SELECT id, content_id, user_id, role FROM permissions WHERE user_id IS NOT NULL;
DROP TABLE permissions;
ALTER TABLE permissions_old RENAME TO permissions;
DROP TABLE group_members;
DROP TABLE groups;
