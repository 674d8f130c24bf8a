//! How many students a search matches, estimated in the service from the
//! statistics PostgreSQL's planner keeps for the same estimate: the
//! histogram and most common values of the search index's expression
//! (`pg_stats` of `students_search_trgm`) and the table's size
//! (`pg_class`), combined as the planner combines them for
//! `like '%fragment%'` (`patternsel` in `selfuncs.c`).
//!
//! Why by hand: the estimate decides a search's route and its default
//! `total`, and asking the planner for it (`explain`) costs the server a
//! plan of the search for every request, 0.25 ms at a million students,
//! more than the walk it decides on; at 16 connections on two cores that
//! plan was the difference between a p99 of 13 ms and 9 ms for the list mix
//! (`bench/README.md`). No crate reads planner statistics. The estimate
//! never decides which rows a page holds, only how they are found.
//!
//! Rules: one snapshot per store, read again once older than [`MAX_AGE`]
//! (only `analyze` changes the statistics, and autovacuum runs it as the
//! table changes), by one request at a time while the others wait for it;
//! without statistics (a table never analysed, or a histogram of fewer than
//! 100 entries, where the planner blends in heuristics) there is no
//! estimate here and the caller asks the planner. May import the store's
//! connection type and its SQL fragments.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::queries::{COUNTED, TABLE_ROWS};
use super::PgClient;

/// How long a snapshot of the statistics serves.
const MAX_AGE: Duration = Duration::from_mins(1);

/// Below this many histogram entries the planner does not trust the
/// histogram alone (`patternsel`); neither does this.
const MIN_HISTOGRAM: usize = 100;

/// The planner's bounds on a pattern's selectivity from a histogram.
const MIN_SELECTIVITY: f64 = 0.0001;
const MAX_SELECTIVITY: f64 = 0.9999;

/// The table's size as the planner estimates it, and the statistics of
/// the search index's expression (lower case `name`, a separator,
/// `email`), as `analyze` left them.
fn sql() -> String {
    format!(
        "select {TABLE_ROWS}, s.null_frac::float8, s.most_common_vals::text::text[], \
         s.most_common_freqs, s.histogram_bounds::text::text[] \
         from pg_class as c \
         join pg_namespace as n on n.oid = c.relnamespace \
         join pg_stats as s on s.schemaname = n.nspname and s.tablename = 'students_search_trgm' \
         where c.oid = to_regclass('students') and {COUNTED}"
    )
}

/// The statistics a search is estimated from.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SearchStatistics {
    students: f64,
    null_fraction: f64,
    common: Vec<(String, f64)>,
    histogram: Vec<String>,
}

impl SearchStatistics {
    /// The students in the table, as the planner estimates them.
    pub(super) fn students(&self) -> i64 {
        row_count(self.students)
    }

    /// The students whose name or email holds `q`, ignoring case, as the
    /// planner estimates them: the share of the histogram's inner entries
    /// that hold it (the first and last are left out, as the planner does),
    /// kept within its bounds, for the rows the most common values leave,
    /// plus the frequencies of the most common values that hold it.
    pub(super) fn matches(&self, q: &str) -> i64 {
        let needle = q.to_lowercase();
        let inner = &self.histogram[1..self.histogram.len() - 1];
        let hits = inner.iter().filter(|v| v.contains(&needle)).count();
        #[allow(clippy::cast_precision_loss)] // counts of at most 10,001 entries
        let histogram = (hits as f64 / inner.len() as f64).clamp(MIN_SELECTIVITY, MAX_SELECTIVITY);
        let (common, common_total) =
            self.common
                .iter()
                .fold((0.0, 0.0), |(hit, total), (value, frequency)| {
                    let hit = if value.contains(&needle) {
                        hit + frequency
                    } else {
                        hit
                    };
                    (hit, total + frequency)
                });
        let selectivity =
            (histogram * (1.0 - self.null_fraction - common_total) + common).clamp(0.0, 1.0);
        row_count(selectivity * self.students)
    }
}

/// A row estimate as the planner rounds it: to the nearest row, at least one.
#[allow(clippy::cast_possible_truncation)] // an estimate of rows in a table
fn row_count(rows: f64) -> i64 {
    rows.round().max(1.0) as i64
}

/// A read of the statistics and when it was made.
#[derive(Debug, Clone)]
struct Snapshot {
    read_at: Instant,
    search: Option<Arc<SearchStatistics>>,
}

/// The store's snapshot of the statistics.
#[derive(Debug, Default)]
pub(super) struct Statistics {
    snapshot: Mutex<Option<Snapshot>>,
    reading: tokio::sync::Mutex<()>,
}

impl Statistics {
    /// The statistics of a search, read again over `client` when the
    /// snapshot is older than [`MAX_AGE`]; `None` when there are none.
    pub(super) async fn search(
        &self,
        client: &PgClient,
    ) -> Result<Option<Arc<SearchStatistics>>, tokio_postgres::Error> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh.search);
        }
        let _reading = self.reading.lock().await;
        // Another request may have read them while this one waited.
        if let Some(fresh) = self.fresh() {
            return Ok(fresh.search);
        }
        let search = read(client).await?.map(Arc::new);
        *self.lock() = Some(Snapshot {
            read_at: Instant::now(),
            search: search.clone(),
        });
        Ok(search)
    }

    fn fresh(&self) -> Option<Snapshot> {
        self.lock()
            .as_ref()
            .filter(|snapshot| snapshot.read_at.elapsed() < MAX_AGE)
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Snapshot>> {
        // The snapshot is whole whatever a panicking holder was doing.
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn read(client: &PgClient) -> Result<Option<SearchStatistics>, tokio_postgres::Error> {
    let Some(row) = client.client.query_opt(&sql(), &[]).await? else {
        return Ok(None);
    };
    let histogram: Option<Vec<String>> = row.try_get(4)?;
    let Some(histogram) = histogram.filter(|h| h.len() >= MIN_HISTOGRAM) else {
        return Ok(None);
    };
    let values: Option<Vec<String>> = row.try_get(2)?;
    let frequencies: Option<Vec<f32>> = row.try_get(3)?;
    let common = values
        .unwrap_or_default()
        .into_iter()
        .zip(frequencies.unwrap_or_default().into_iter().map(f64::from))
        .collect();
    Ok(Some(SearchStatistics {
        students: row.try_get(0)?,
        null_fraction: row.try_get(1)?,
        common,
        histogram,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statistics(histogram: &[&str], common: &[(&str, f64)]) -> SearchStatistics {
        SearchStatistics {
            students: 1_000_000.0,
            null_fraction: 0.0,
            common: common.iter().map(|(v, f)| ((*v).to_owned(), *f)).collect(),
            histogram: histogram.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// 202 entries: `ada …` 1 in 4 of the inner 200, the first and last
    /// (which the planner leaves out) matching everything searched here.
    fn histogram() -> Vec<String> {
        (0..202)
            .map(|i| match i {
                0 | 201 => "ada ada\u{1f}ada@x".to_owned(),
                i if i % 4 == 0 => format!("ada {i}\u{1f}ada{i}@x"),
                i => format!("bob {i}\u{1f}bob{i}@x"),
            })
            .collect()
    }

    #[test]
    fn a_search_is_estimated_from_the_inner_histogram_ignoring_case() {
        let histogram = histogram();
        let refs: Vec<&str> = histogram.iter().map(String::as_str).collect();
        let stats = statistics(&refs, &[]);
        assert_eq!(stats.matches("ADA"), 250_000);
        assert_eq!(stats.students(), 1_000_000);
    }

    #[test]
    fn a_fragment_in_no_entry_is_the_planner_s_floor() {
        let histogram = histogram();
        let refs: Vec<&str> = histogram.iter().map(String::as_str).collect();
        assert_eq!(statistics(&refs, &[]).matches("qzxv"), 100);
    }

    #[test]
    fn the_most_common_values_count_apart_from_the_histogram() {
        let histogram = histogram();
        let refs: Vec<&str> = histogram.iter().map(String::as_str).collect();
        // A fifth of the rows is one common value holding `ada`: the
        // histogram speaks for the other four fifths.
        let stats = statistics(&refs, &[("ada\u{1f}ada@x", 0.2), ("eve\u{1f}eve@x", 0.1)]);
        assert_eq!(stats.matches("ada"), 200_000 + 175_000);
        assert_eq!(stats.matches("eve"), 100_000 + 70);
    }
}
