# shellcheck shell=bash
# Loads N students with one SQL statement into the service's own schema (the
# database must be migrated already), for bench/scale.sh. Source it; it
# defines functions only.
#
#   scale_load_postgres DB N   (through pg_psql, scripts/lib/postgres.sh)
#   scale_load_sqlite FILE N   (through the sqlite3 command line)
#
# The rows look like real ones, the same on both backends: "First Last"
# from 50 first and 60 last names (every pair 1 in 3,000), an email made of
# the name, the row number and one of four mail domains
# ("maria.garcia1234@students.example.org"), one of twelve fields of study,
# a GPA spread evenly over 0.00 to 10.00 in steps of 0.01 (so many ties for
# the sort to break by id), and a creation time 90 s after the previous
# student's, from 2023-09-01. Row g gets id g on a fresh table. The email is
# ASCII and lowercase, so its canonical key (docs/api.md) is the email
# itself. Searches by fragment hit realistic numbers of rows: see the
# fragments in bench/scale_paths.py.

_SCALE_FIRST=(Maria James Ana Mohammed Elizabeth Wei Olga Jose Fatima David Aisha John Sofia Luca
    Priya Chen Emma Noah Yuki Omar Lena Ivan Amara Lucas Hannah Ahmed Chloe Mateo Zainab Daniel Ingrid
    Kofi Mei Pablo Sara Tomasz Leila Hugo Nadia Arjun Clara Felix Amina Oscar Rosa Kenji Eva Samuel
    Irene Tariq)
_SCALE_LAST=(Garcia Smith Nguyen Kowalski Johansson Andersson Larsson Muller Rossi Silva Kim Patel
    Okafor Dubois Novak Haddad Tanaka Lopez Brown Wilson Martin Ivanova Chen Singh Kaur Hernandez
    Costa Moreau Schmidt Fischer Jensen Nielsen Horvat Popescu Yilmaz Cohen Mensah Adeyemi Reyes Cruz
    Wang Li Zhang Sato Ito Park Choi Khan Ali Hussain Rahman Mendes Ferreira Romano Bianchi Weber
    Wagner Becker Hoffmann Petrov)
_SCALE_SUBJECTS=("Mathematics" "Physics" "Computer Science" "History" "Biology" "Chemistry"
    "Economics" "Law" "Medicine" "Philosophy" "Linguistics" "Civil Engineering")
_SCALE_MAIL=(students.example.org mail.example.com uni.example.edu example.net)
# Seconds since 1970 of 2023-09-01T00:00:00Z.
_SCALE_EPOCH=1693526400

# _scale_values WORD...: "(0, 'w0'), (1, 'w1'), ..." (the words hold no quote).
_scale_values() {
    local i=0 out="" w
    for w in "$@"; do
        out+="${out:+, }($i, '$w')"
        i=$((i + 1))
    done
    printf '%s' "$out"
}

# _scale_tables: the word lists as SQLite tables indexed from 0 (temporary,
# so the service's schema is left as it was).
_scale_tables() {
    printf 'create temporary table bench_first (i integer primary key, w text not null);\n'
    printf 'insert into bench_first values %s;\n' "$(_scale_values "${_SCALE_FIRST[@]}")"
    printf 'create temporary table bench_last (i integer primary key, w text not null);\n'
    printf 'insert into bench_last values %s;\n' "$(_scale_values "${_SCALE_LAST[@]}")"
    printf 'create temporary table bench_subject (i integer primary key, w text not null);\n'
    printf 'insert into bench_subject values %s;\n' "$(_scale_values "${_SCALE_SUBJECTS[@]}")"
    printf 'create temporary table bench_mail (i integer primary key, w text not null);\n'
    printf 'insert into bench_mail values %s;\n' "$(_scale_values "${_SCALE_MAIL[@]}")"
}

scale_load_postgres() {
    local db="$1" n="$2"
    {
        # The service computes email_key itself and marks its sessions so;
        # this session does too (the key of an ASCII lowercase email is the
        # email), which keeps the migration's trigger out of the load.
        printf "set student_api.email_key = 'computed';\n"
        printf "set maintenance_work_mem = '256MB';\n"
        printf 'begin;\n'
        printf "insert into students (name, email, email_key, domain, gpa, created_at, updated_at)
select name, email, email, domain, gpa, created, created
from (
    select first || ' ' || last as name,
           lower(first) || '.' || lower(last) || g || '@' || mail as email,
           domain, gpa, created
    from (
        select g,
               (%s)[1 + g %% %d] as first,
               (%s)[1 + (g / %d) %% %d] as last,
               (%s)[1 + (g / 7) %% %d] as domain,
               (%s)[1 + (g / 3) %% %d] as mail,
               (g %% 1001 * 7919 %% 1001) / 100.0 as gpa,
               to_timestamp(%d + g * 90) as created
        from generate_series(1, %d) as g
    ) as parts
) as rows;\n" \
            "$(_scale_pg_array "${_SCALE_FIRST[@]}")" "${#_SCALE_FIRST[@]}" \
            "$(_scale_pg_array "${_SCALE_LAST[@]}")" "${#_SCALE_FIRST[@]}" "${#_SCALE_LAST[@]}" \
            "$(_scale_pg_array "${_SCALE_SUBJECTS[@]}")" "${#_SCALE_SUBJECTS[@]}" \
            "$(_scale_pg_array "${_SCALE_MAIL[@]}")" "${#_SCALE_MAIL[@]}" \
            "$_SCALE_EPOCH" "$n"
        printf 'commit;\n'
        # What autovacuum would do soon after such a load: statistics for the
        # planner and a visibility map for index-only scans.
        printf 'vacuum (analyze) students;\n'
    } | pg_psql -d "$db"
}

# _scale_pg_array WORD...: array['w0', 'w1', ...]
_scale_pg_array() {
    local out="" w
    for w in "$@"; do
        out+="${out:+, }'$w'"
    done
    printf 'array[%s]' "$out"
}

scale_load_sqlite() {
    local file="$1" n="$2"
    {
        # One transaction; nothing else has the file open while it loads.
        printf 'pragma synchronous = off;\n'
        _scale_tables
        printf 'begin;\n'
        printf "insert into students (name, email, email_key, domain, gpa, created_at, updated_at)
with recursive seq(g) as (select 1 union all select g + 1 from seq where g < %d)
select name, email, email, domain, gpa, created, created
from (
    select first || ' ' || last as name,
           lower(first) || '.' || lower(last) || g || '@' || mail as email,
           domain, gpa, created
    from (
        select g,
               (select w from bench_first where i = g %% %d) as first,
               (select w from bench_last where i = (g / %d) %% %d) as last,
               (select w from bench_subject where i = (g / 7) %% %d) as domain,
               (select w from bench_mail where i = (g / 3) %% %d) as mail,
               (g %% 1001 * 7919 %% 1001) / 100.0 as gpa,
               strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', %d + g * 90, 'unixepoch') as created
        from seq
    )
);\n" \
            "$n" "${#_SCALE_FIRST[@]}" "${#_SCALE_FIRST[@]}" "${#_SCALE_LAST[@]}" \
            "${#_SCALE_SUBJECTS[@]}" "${#_SCALE_MAIL[@]}" "$_SCALE_EPOCH"
        printf 'commit;\n'
        printf 'analyze;\n'
    } | sqlite3 -bail "$file"
}
