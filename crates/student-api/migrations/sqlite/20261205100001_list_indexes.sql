-- The indexes that keep lists, searches and sorts fast at any size.
--
-- One per sort key on (key, id): it serves the order, its ties and a
-- cursor's row comparison in both directions. Names sort without regard to
-- ASCII case.
create index students_name_id on students (name collate nocase, id);
create index students_gpa_id on students (gpa, id);
create index students_created_at_id on students (created_at, id);

-- Search: an FTS5 index of name and email with the trigram tokenizer,
-- which matches any substring of three characters or more, ignoring case.
-- It holds no copy of the text (external content: the students table),
-- and the triggers keep it in step with every write.
create virtual table students_search using fts5(
    name, email,
    content = 'students', content_rowid = 'id',
    tokenize = 'trigram case_sensitive 0'
);
insert into students_search (students_search) values ('rebuild');

create trigger students_search_insert after insert on students begin
    insert into students_search (rowid, name, email) values (new.id, new.name, new.email);
end;

create trigger students_search_delete after delete on students begin
    insert into students_search (students_search, rowid, name, email)
        values ('delete', old.id, old.name, old.email);
end;

create trigger students_search_update after update of name, email on students
when old.name is not new.name or old.email is not new.email begin
    insert into students_search (students_search, rowid, name, email)
        values ('delete', old.id, old.name, old.email);
    insert into students_search (rowid, name, email) values (new.id, new.name, new.email);
end;

-- The number of students, kept by triggers, so that the total of a list
-- without a search is exact without counting rows. SQLite has one writer
-- at a time, so this one row is no point of contention.
create table students_count (n integer not null);
insert into students_count (n) select count(*) from students;

create trigger students_count_insert after insert on students begin
    update students_count set n = n + 1;
end;

create trigger students_count_delete after delete on students begin
    update students_count set n = n - 1;
end;
