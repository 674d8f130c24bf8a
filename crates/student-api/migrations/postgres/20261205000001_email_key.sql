-- Email uniqueness moves from lower(email) to email_key, the canonical form
-- the service computes (docs/api.md: local part NFKC and lowercase, domain
-- in its ASCII IDNA form). SQL cannot compute that form, so:
-- - rows stored before keep lower(email), the key their uniqueness was
--   decided on; for a plain ASCII address the two are the same;
-- - a writer that does not compute the key itself (a replica of the
--   previous release during the rolling update, an operator's psql session)
--   gets lower(email) from the trigger below. The service marks its own
--   sessions with the setting student_api.email_key = 'computed', which
--   turns the trigger off for them.
alter table students add column email_key text;
update students set email_key = lower(email);
alter table students alter column email_key set not null;
create unique index students_email_key_key on students (email_key);
drop index students_email_lower_key;

create function students_fill_email_key() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' or new.email is distinct from old.email then
        new.email_key := lower(new.email);
    end if;
    return new;
end
$$;

create trigger students_fill_email_key
    before insert or update on students
    for each row
    when (current_setting('student_api.email_key', true) is distinct from 'computed')
    execute function students_fill_email_key();
