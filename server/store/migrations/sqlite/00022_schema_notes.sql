-- dais:additive
-- What each applied migration means to an older dais (issue 18, upgrades):
-- additive ones (new tables and columns an older dais ignores) let nodes
-- of the older version go on serving beside a newer one, as a Kubernetes
-- rolling update runs them; any other makes the older nodes drain and
-- exit. Each dais writes the notes of its own migrations after it
-- migrates; a migration file says it is additive with a first line
-- "-- dais:additive".

-- +goose Up
CREATE TABLE schema_notes (
    version  INTEGER PRIMARY KEY,
    additive INTEGER NOT NULL
);

-- +goose Down
DROP TABLE schema_notes;
