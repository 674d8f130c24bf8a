-- Student records. Email uniqueness is case-insensitive and enforced here,
-- not only in the service, so concurrent writers cannot race past it.
create table students (
    id         bigint generated always as identity primary key,
    name       text not null check (char_length(name) between 1 and 100),
    email      text not null check (char_length(email) between 3 and 254),
    domain     text not null check (char_length(domain) between 1 and 100),
    gpa        double precision not null check (gpa >= 0 and gpa <= 10),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create unique index students_email_lower_key on students (lower(email));
