-- The runtime versions asked for through the API (r_version, py_version,
-- quarto_version of PATCH/POST) get their own columns: until now they shared
-- r_version/py_version/quarto_version with the versions a deploy used, so a
-- version used once became the request of every later deploy (issue 7).
--
-- Existing rows: content never deployed (no active bundle) can only have had
-- its versions set through the API, so they move to the new columns; for
-- deployed content the values are what the last deploy used (a request made
-- before it was overwritten by that deploy) and stay where they are.

-- +goose Up
ALTER TABLE content ADD COLUMN r_version_wanted TEXT NOT NULL DEFAULT '';
ALTER TABLE content ADD COLUMN py_version_wanted TEXT NOT NULL DEFAULT '';
ALTER TABLE content ADD COLUMN quarto_version_wanted TEXT NOT NULL DEFAULT '';
UPDATE content SET r_version_wanted = r_version, py_version_wanted = py_version, quarto_version_wanted = quarto_version,
    r_version = '', py_version = '', quarto_version = ''
    WHERE bundle_id IS NULL;

-- +goose Down
-- The older schema has one column per runtime: a request wins there, as it
-- did in the older dais.
UPDATE content SET r_version = r_version_wanted WHERE r_version_wanted <> '';
UPDATE content SET py_version = py_version_wanted WHERE py_version_wanted <> '';
UPDATE content SET quarto_version = quarto_version_wanted WHERE quarto_version_wanted <> '';
ALTER TABLE content DROP COLUMN quarto_version_wanted;
ALTER TABLE content DROP COLUMN py_version_wanted;
ALTER TABLE content DROP COLUMN r_version_wanted;
