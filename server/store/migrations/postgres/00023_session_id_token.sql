-- dais:additive
-- The ID token an OpenID Connect sign-in got, kept with its session so
-- that logging out can end the provider's session too (id_token_hint,
-- OAuth2.LogoutAtProvider). Empty for other sessions.

-- +goose Up
ALTER TABLE sessions ADD COLUMN id_token TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sessions DROP COLUMN id_token;
