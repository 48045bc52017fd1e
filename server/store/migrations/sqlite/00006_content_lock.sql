-- Content can be locked (Connect's locked and locked_message): a locked
-- content is not served, deployed or changed until it is unlocked.

-- +goose Up
ALTER TABLE content ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE content ADD COLUMN locked_message TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE content DROP COLUMN locked_message;
ALTER TABLE content DROP COLUMN locked;
