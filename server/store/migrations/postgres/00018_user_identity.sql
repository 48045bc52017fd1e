-- dais:additive
-- Users from an authentication provider (issue 15): the provider that
-- made the account (password, proxy, ...) and the provider's own,
-- unchanging id of the user, so that a rename in the identity provider
-- keeps the same account. unique_id is NULL for password users and for
-- accounts created ahead of their first login; several NULLs may coexist.

-- +goose Up
ALTER TABLE users ADD COLUMN provider TEXT NOT NULL DEFAULT 'password';
ALTER TABLE users ADD COLUMN unique_id TEXT;
CREATE UNIQUE INDEX users_provider_unique_id ON users (provider, unique_id);

-- +goose Down
DROP INDEX users_provider_unique_id;
ALTER TABLE users DROP COLUMN unique_id;
ALTER TABLE users DROP COLUMN provider;
