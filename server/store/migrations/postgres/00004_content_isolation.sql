-- Per-content network and resource settings (issue 23): whether content
-- processes may reach the outside (NULL: Applications.OutboundNetwork), and
-- Connect's memory and CPU fields (bytes and CPUs; NULL: the server's
-- defaults, [Scheduler] MemoryLimit and CPULimit); and, on a job, why its
-- process ended when dais knows ("killed: over its 256 MB memory limit").

-- +goose Up
ALTER TABLE content ADD COLUMN outbound_network BOOLEAN;
ALTER TABLE content ADD COLUMN memory_request BIGINT;
ALTER TABLE content ADD COLUMN memory_limit BIGINT;
ALTER TABLE content ADD COLUMN cpu_request DOUBLE PRECISION;
ALTER TABLE content ADD COLUMN cpu_limit DOUBLE PRECISION;

ALTER TABLE jobs ADD COLUMN exit_reason TEXT;

-- +goose Down
ALTER TABLE jobs DROP COLUMN exit_reason;
ALTER TABLE content DROP COLUMN cpu_limit;
ALTER TABLE content DROP COLUMN cpu_request;
ALTER TABLE content DROP COLUMN memory_limit;
ALTER TABLE content DROP COLUMN memory_request;
ALTER TABLE content DROP COLUMN outbound_network;
