//! How the PostgreSQL store finds a page of the list and its `total`:
//! which statements of `queries` run, in what order, on one connection.
//!
//! A list without a search pipelines its page and its count. A search with
//! the default count takes one of two routes by the estimate of its matches
//! (from the planner's statistics, read by the service in `statistics`, or
//! from the planner where there are none): few matches are read once
//! through the trigram index for both the page and an exact count; many
//! are found by walking the order's index, which finds a page after few
//! rows, and the estimate is the total. Both fall back to all the matches,
//! sorted, where they find too few. May import `storage` and the store's
//! other modules.

use tokio_postgres::Row;

use super::queries;
use super::statistics::Statistics;
use super::PgClient;
use crate::storage::{walk_threshold, CountMode, ListQuery, Start, EXACT_COUNT_LIMIT, WALK_WINDOW};

/// Above this many expected matches, the default count is the estimate
/// without counting at all, and a search walks the order's index. Low, so
/// that matches are counted only where they are expected to be few: up to
/// 1,001 of them are read through the trigram index, in no order; a table
/// scan until 1,001 are found, which the planner might choose if it
/// expected them dense, reads far more rows than that when they are not.
const PLANNED_BEYOND: i64 = 2 * EXACT_COUNT_LIMIT;

/// Whether the `estimate` of the matches is few enough to count them, at
/// most `EXACT_COUNT_LIMIT + 1`.
pub(super) fn expects_few(estimate: Option<i64>) -> bool {
    estimate.is_none_or(|n| n <= PLANNED_BEYOND)
}

/// The total past `EXACT_COUNT_LIMIT` matches: the estimate, unless below
/// what was counted, which it would contradict.
fn beyond_limit(estimate: Option<i64>, counted: i64) -> i64 {
    estimate.unwrap_or(counted).max(counted)
}

/// `total` as `query.count` asks for it.
pub(super) async fn count(
    client: &PgClient,
    query: &ListQuery,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let run = |statement: queries::Statement| async move {
        let row = client.run(&statement).await?;
        row.first().map(|row| row.try_get::<_, i64>(0)).transpose()
    };
    match query.count {
        CountMode::Exact => run(queries::exact_count(query)).await,
        CountMode::Planned => estimate(client, query).await,
        CountMode::Estimated => {
            // The estimate first, which reads no row: counting even up to
            // the limit reads many rows when matches are common (most rows
            // until the limit is met, or every match of a trigram).
            let estimate = estimate(client, query).await?;
            if !expects_few(estimate) {
                return Ok(estimate);
            }
            match run(queries::bounded_count(query)).await? {
                Some(n) if n > EXACT_COUNT_LIMIT => Ok(Some(beyond_limit(estimate, n))),
                exact => Ok(exact),
            }
        }
    }
}

/// A search with the default count, which takes one of the routes of
/// [`search_route`].
pub(super) fn is_estimated_search(query: &ListQuery) -> bool {
    query.search.is_some() && query.count == CountMode::Estimated
}

/// The page and `total` of a search with the default count. A search
/// expected to match few students has its page and an exact count from one
/// read of its matches (`page_with_count`): a page of them needs every
/// match read and sorted anyway, and a count of its own would read them
/// again. One expected to match many walks the order's index (`walk_page`)
/// and has the estimate as its total. Where the walk's window holds too
/// few matches (they sort together, as a first name in name order), or the
/// few matches prove more than counted, the page comes from all the
/// matches, sorted (`matches_page`). Both first statements hide the
/// fragment from the planner, which plans them once per connection: the
/// service chose the route, and planning a search with its fragment costs
/// the server more than either route's page.
pub(super) async fn estimated_search(
    client: &PgClient,
    statistics: &Statistics,
    query: &ListQuery,
) -> Result<(Vec<Row>, Option<i64>), tokio_postgres::Error> {
    let (estimate, first) = search_route(client, statistics, query).await?;
    let mut page = client.run(&first).await?;
    if !expects_few(estimate) {
        if page.len() <= usize::try_from(query.limit).unwrap_or(usize::MAX) {
            page = client.run(&queries::matches_page(query)).await?;
        }
        return Ok((page, estimate));
    }
    let counted: i64 = page
        .first()
        .map(|row| row.try_get(queries::COUNT_COLUMN))
        .transpose()?
        .unwrap_or(0);
    if counted > EXACT_COUNT_LIMIT {
        let total = beyond_limit(estimate, counted);
        return Ok((
            client.run(&queries::matches_page(query)).await?,
            Some(total),
        ));
    }
    // An empty page is one row of nulls beside its count.
    if let Some(row) = page.first() {
        if row.try_get::<_, Option<i64>>(0)?.is_none() {
            page.clear();
        }
    }
    Ok((page, Some(counted)))
}

/// The estimate of a search's matches and the first statement of its
/// page: the page with its count, or the walk, whose window is
/// `WALK_WINDOW` times the threshold where walking and reading the matches
/// cost the same. The estimate comes from the planner's statistics, read by
/// the service (`statistics`), or, where there are none, from the planner.
pub(super) async fn search_route(
    client: &PgClient,
    statistics: &Statistics,
    query: &ListQuery,
) -> Result<(Option<i64>, queries::Statement), tokio_postgres::Error> {
    let q = query.search.as_deref().unwrap_or_default();
    let (estimate, students) = if let Some(search) = statistics.search(client).await? {
        (Some(search.matches(q)), Some(search.students()))
    } else {
        let students = query_without_search(query);
        tokio::try_join!(planned(client, query), estimate(client, &students))?
    };
    if expects_few(estimate) {
        return Ok((estimate, queries::page_with_count(query)));
    }
    // An offset page walks past its offset too.
    let skipped = match query.start {
        Start::Offset(offset) => offset,
        Start::After(_) => 0,
    };
    let threshold = walk_threshold(students.unwrap_or(0), query.limit + skipped);
    let window = threshold.saturating_mul(WALK_WINDOW);
    Ok((estimate, queries::walk_page(query, window)))
}

/// The list of every student, in the order and from the start of `query`.
fn query_without_search(query: &ListQuery) -> ListQuery {
    ListQuery {
        search: None,
        ..query.clone()
    }
}

/// The planner's estimate of the query's matches: of the whole table as the
/// planner makes it (`table_estimate`) when there is no search, else from
/// the search's plan.
pub(super) async fn estimate(
    client: &PgClient,
    query: &ListQuery,
) -> Result<Option<i64>, tokio_postgres::Error> {
    if query.search.is_none() {
        let rows = client.run(&queries::table_estimate()).await?;
        if let Some(estimate) = rows
            .first()
            .map(|row| row.try_get::<_, Option<i64>>(0))
            .transpose()?
            .flatten()
        {
            return Ok(Some(estimate));
        }
    }
    planned(client, query).await
}

/// The row estimate of the plan of the query's matches.
async fn planned(
    client: &PgClient,
    query: &ListQuery,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let rows = client.run(&queries::planned_count(query)).await?;
    let first_line: Option<String> = rows.first().map(|row| row.try_get(0)).transpose()?;
    Ok(first_line.as_deref().and_then(queries::plan_rows))
}
