-- pg_trgm's trigram operator classes let a GIN index serve
-- `ilike '%fragment%'`, the list's search. It is a trusted extension: the
-- owner of the database can create it without being a superuser.
create extension if not exists pg_trgm;
