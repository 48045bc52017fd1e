-- dais:additive
-- The jobs still running (the dashboard's content list and load page read
-- them on every request), out of the whole history of jobs.

-- +goose Up
CREATE INDEX jobs_running ON jobs (content_id) WHERE ended_at IS NULL;

-- +goose Down
DROP INDEX jobs_running;
