-- Steadier row estimates for searches. The planner estimates how many
-- students `ilike '%fragment%'` matches from the histograms of name and
-- email; with the default 100 entries, a fragment one student in 60 holds
-- is in none, one or two of them depending on the sample, and an estimate
-- of 200 where 16,699 match makes it read and sort every match of the
-- trigram indexes for a page of 20 instead of walking the order's index.
-- With 1,000 entries the estimate stays near. Setting the target takes a
-- lock that lets reads and writes go on; the analyze that follows reads a
-- sample of 300,000 rows at most, whatever the table's size.
alter table students alter column name set statistics 1000;
alter table students alter column email set statistics 1000;
analyze students (name, email);
