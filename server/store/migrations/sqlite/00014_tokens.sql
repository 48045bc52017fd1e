-- Tokens of Connect's token authentication (R rsconnect's connectUser(),
-- the RStudio IDE's publish wizard): the client keeps an RSA private key
-- and signs each request; the server keeps the public key. A token is
-- nobody's until a logged-in user claims it in the browser.
-- token_signatures remembers the signatures seen while their Date is
-- still accepted, so that a replayed request is refused.

-- +goose Up
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token        TEXT    NOT NULL UNIQUE,
    public_key   TEXT    NOT NULL,
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    user_agent   TEXT    NOT NULL DEFAULT '',
    address      TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    claimed_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE token_signatures (
    hash       TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX token_signatures_expires ON token_signatures (expires_at);

-- +goose Down
DROP TABLE token_signatures;
DROP TABLE tokens;
