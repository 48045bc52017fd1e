-- Schedules as Connect describes them (issue 14): a kind (minute, hour,
-- day, weekday, week, dayofweek, semimonth, dayofmonth, dayweekofmonth,
-- year), its JSON parameters ({"N": 2}, {"Days": [1, 3]}, ...) and the
-- start they count from, beside dais's own cron expression or interval.
-- One table, read by both APIs; email is kept for Connect's clients (dais
-- sends no mail).

-- +goose Up
ALTER TABLE schedules ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE schedules ADD COLUMN spec TEXT NOT NULL DEFAULT '';
ALTER TABLE schedules ADD COLUMN start_at BIGINT;
ALTER TABLE schedules ADD COLUMN email BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
-- The older schema cannot evaluate Connect's kinds: such schedules go.
DELETE FROM schedules WHERE kind <> '';
ALTER TABLE schedules DROP COLUMN email;
ALTER TABLE schedules DROP COLUMN start_at;
ALTER TABLE schedules DROP COLUMN spec;
ALTER TABLE schedules DROP COLUMN kind;
