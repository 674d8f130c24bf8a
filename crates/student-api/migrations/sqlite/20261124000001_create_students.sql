-- Student records. Email uniqueness is case-insensitive and enforced here,
-- not only in the service, so concurrent writers cannot race past it.
-- Timestamps are RFC 3339 text in UTC with millisecond precision.
create table students (
    id         integer primary key autoincrement,
    name       text not null check (length(name) between 1 and 100),
    email      text not null check (length(email) between 3 and 254),
    domain     text not null check (length(domain) between 1 and 100),
    gpa        real not null check (gpa >= 0 and gpa <= 10),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create unique index students_email_lower_key on students (lower(email));
