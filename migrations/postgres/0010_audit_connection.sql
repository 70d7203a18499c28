-- The PSA connection an audit entry is about: ticket numbers repeat across connections (two
-- PSAs can both have a ticket 1234), so a ticket's timeline is per connection. Entries written
-- before this column existed keep it empty. The table stays append-only: adding a column
-- changes no row, and the triggers still refuse UPDATE and DELETE.
ALTER TABLE audit_log ADD COLUMN connection_id BIGINT;
CREATE INDEX audit_log_by_connection_ticket ON audit_log(connection_id, ticket);
