-- no-transaction
-- The indexes that keep lists, searches and sorts fast at any size: one
-- per sort key on (key, id), which serves the order, its ties and a cursor's
-- row comparison in both directions, and one trigram index per searched
-- column. They are built with `concurrently`, which does not block writes
-- on a large table and cannot run in a transaction: the migrator runs this
-- file outside one, one statement at a time, and first drops any index of
-- these names that an interrupted build left invalid.
create index concurrently if not exists students_name_id on students (name, id);
create index concurrently if not exists students_gpa_id on students (gpa, id);
create index concurrently if not exists students_created_at_id on students (created_at, id);
create index concurrently if not exists students_name_trgm on students using gin (name gin_trgm_ops);
create index concurrently if not exists students_email_trgm on students using gin (email gin_trgm_ops);
