-- no-transaction
-- One trigram index for the search instead of one per column. A search
-- reads the posting list of each of its trigrams in every index it uses:
-- with two indexes it read a common trigram's list twice, once per column.
-- The index is on name and email joined by a control character, which no
-- name, email or search holds, in lower case: `joined like lower(pattern)`
-- matches exactly what `name ilike pattern or email ilike pattern` did,
-- and the planner estimates it without lowering every entry of the
-- statistics each time (the service's query writes the same expression).
-- Like every statement of a no-transaction migration, each one can run
-- again after an interruption: an index an interrupted build left invalid
-- is dropped and built again, and the others are idempotent.
create index concurrently if not exists students_search_trgm on students
    using gin (lower(name || E'\x1f' || email) gin_trgm_ops);
-- The planner's estimate of a search now comes from the statistics of the
-- index's expression, at the target the columns had (migration
-- 20261205100003 says why 1,000), and the columns go back to the default.
-- These take locks that let reads and writes go on.
alter index students_search_trgm alter column 1 set statistics 1000;
alter table students alter column name set statistics -1;
alter table students alter column email set statistics -1;
analyze students;
-- Dropped once the planner has the new index and its statistics, so that no
-- search is ever planned without a trigram index.
drop index concurrently if exists students_name_trgm;
drop index concurrently if exists students_email_trgm;
