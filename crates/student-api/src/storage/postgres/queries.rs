//! The SQL of the PostgreSQL store. Each statement is prepared once per
//! connection, on first use.

macro_rules! columns {
    () => {
        "id, name, email, domain, gpa, created_at, updated_at"
    };
}

/// Case-insensitive substring match on name or email; `$1` null matches all.
macro_rules! search_filter {
    () => {
        "($1::text is null or strpos(lower(name), lower($1)) > 0 or strpos(lower(email), lower($1)) > 0)"
    };
}

/// A statement the store runs; its position indexes the per-connection cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Query {
    Insert,
    SelectOne,
    Count,
    SelectPage,
    Update,
    Delete,
}

impl Query {
    pub(super) const ALL: [Self; 6] = [
        Self::Insert,
        Self::SelectOne,
        Self::Count,
        Self::SelectPage,
        Self::Update,
        Self::Delete,
    ];

    pub(super) fn sql(self) -> &'static str {
        match self {
            Self::Insert => concat!(
                "insert into students (name, email, email_key, domain, gpa) values ($1, $2, $3, $4, $5) returning ",
                columns!()
            ),
            Self::SelectOne => concat!("select ", columns!(), " from students where id = $1"),
            Self::Count => concat!("select count(*) from students where ", search_filter!()),
            Self::SelectPage => concat!(
                "select ",
                columns!(),
                " from students where ",
                search_filter!(),
                " order by id limit $2 offset $3"
            ),
            Self::Update => concat!(
                "update students set name = coalesce($2, name), email = coalesce($3, email), ",
                "email_key = coalesce($6, email_key), domain = coalesce($4, domain), ",
                "gpa = coalesce($5, gpa), updated_at = now() ",
                "where id = $1 returning ",
                columns!()
            ),
            Self::Delete => "delete from students where id = $1",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_query_has_its_own_cache_slot() {
        for (index, query) in Query::ALL.iter().enumerate() {
            assert_eq!(*query as usize, index, "{query:?}");
        }
    }
}
