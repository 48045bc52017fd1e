-- dais:additive
-- Connect's connection_timeout and read_timeout of content, in seconds
-- (NULL: the server's Scheduler.ConnectionTimeout and ReadTimeout; 0:
-- never). An older dais leaves them alone: its proxy has no such timeouts.

-- +goose Up
ALTER TABLE content ADD COLUMN connection_timeout INTEGER;
ALTER TABLE content ADD COLUMN read_timeout INTEGER;

-- +goose Down
ALTER TABLE content DROP COLUMN read_timeout;
ALTER TABLE content DROP COLUMN connection_timeout;
