-- Email uniqueness moves from lower(email) to email_key, the canonical form
-- the service computes (docs/api.md: local part NFKC and lowercase, domain
-- in its ASCII IDNA form). SQL cannot compute that form: rows stored before
-- keep lower(email), the key their uniqueness was decided on, which for a
-- plain ASCII address is the same. (SQLite adds a NOT NULL column only with
-- a default; the service always sets the key.)
alter table students add column email_key text not null default '';
update students set email_key = lower(email);
create unique index students_email_key_key on students (email_key);
drop index students_email_lower_key;
