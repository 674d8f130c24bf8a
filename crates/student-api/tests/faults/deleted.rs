//! The database files deleted under the running service (`rm students.db*`),
//! while clients write: every write that starts after the deletion is
//! refused, readiness fails, the operator is told once, and every write
//! acknowledged before is recovered by the runbook's procedure (copy the
//! deleted files out of /proc/<pid>/fd, stop, put them back).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::service::Service;
use crate::writes::{
    assert_actionable, assert_all_acknowledged_present, send, student, Write, STUDENTS,
};

const WRITERS: usize = 4;

#[tokio::test]
async fn writes_after_the_database_files_are_deleted_are_refused_and_none_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("students.db");
    let service = Arc::new(Service::start(&db).await);
    let mut writes = Vec::new();
    let mut ids = Vec::new();
    for n in 0..20 {
        let write = send(&service, "POST", STUDENTS.to_owned(), student("before", n)).await;
        assert_eq!(write.status, 201, "{write:?}");
        ids.push(write.answer["id"].as_i64().unwrap());
        writes.push(write);
    }

    // Writers keep going while the files are deleted.
    let deleted_at = Arc::new(OnceLock::<Instant>::new());
    let tasks = spawn_writers(&service, &ids, &deleted_at);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", db.display())).unwrap();
    }
    let deleted = *deleted_at.get_or_init(Instant::now);

    let mut after = 0;
    for task in tasks {
        for (started, write) in task.await.unwrap() {
            if started > deleted {
                assert_actionable(&write, 503, "unavailable");
                after += 1;
            }
            writes.push(write);
        }
    }
    assert!(after > 10, "only {after} writes after the deletion");

    let ready = service.get("/ready").await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        ready["checks"]["database"], "file removed or replaced",
        "{ready}"
    );
    let faults = service.logged("storage fault:");
    assert_eq!(faults.len(), 1, "the operator is told once: {faults:?}");
    assert_eq!(faults[0]["level"], "ERROR");
    assert_eq!(faults[0]["fault"], "moved");
    let metrics = service.get("/metrics").await.unwrap().text().await.unwrap();
    let moved: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("db_storage_errors_total{kind=\"moved\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        moved >= after,
        "{moved} moved faults counted, {after} writes refused"
    );

    // The runbook: copy the deleted files out of the process, stop it, put
    // them back, start again.
    let rescued = rescue(service.pid(), &db, &dir.path().join("rescued"));
    Arc::into_inner(service).unwrap().stop();
    for (from, to) in rescued {
        std::fs::rename(from, to).unwrap();
    }
    let service = Service::start(&db).await;
    assert_all_acknowledged_present(&service, &writes).await;
    let created = writes
        .iter()
        .filter(|w| w.method == "POST" && w.acknowledged())
        .count();
    let page: Value = service
        .get(&format!("{STUDENTS}?limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["total"].as_u64().unwrap() >= created as u64, "{page}");
    service.stop();
}

/// Clients that create students and patch their own share of `ids` until
/// the files have been deleted and 800 ms have passed; each returns its
/// writes with the instant each started.
fn spawn_writers(
    service: &Arc<Service>,
    ids: &[i64],
    deleted_at: &Arc<OnceLock<Instant>>,
) -> Vec<tokio::task::JoinHandle<Vec<(Instant, Write)>>> {
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let (service, deleted_at) = (service.clone(), deleted_at.clone());
        let own: Vec<i64> = ids.iter().copied().skip(writer).step_by(WRITERS).collect();
        tasks.push(tokio::spawn(async move {
            let mut made: Vec<(Instant, Write)> = Vec::new();
            let stop = Instant::now() + Duration::from_millis(800);
            let mut n = 0;
            while Instant::now() < stop || deleted_at.get().is_none() {
                let started = Instant::now();
                let write = if n % 2 == 0 {
                    let body = student(&format!("w{writer}"), n);
                    send(&service, "POST", STUDENTS.to_owned(), body).await
                } else {
                    let id = own[n % own.len()];
                    let gpa = f64::from(u32::try_from(n % 100).unwrap()) / 10.0;
                    let path = format!("{STUDENTS}/{id}");
                    send(&service, "PATCH", path, json!({"gpa": gpa})).await
                };
                made.push((started, write));
                n += 1;
            }
            made
        }));
    }
    tasks
}

/// Copies the deleted database and WAL that process `pid` still holds open
/// into `into`; returns where each copy must go back.
fn rescue(pid: u32, db: &Path, into: &Path) -> Vec<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(into).unwrap();
    let mut rescued: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let fd = entry.unwrap().path();
        let Ok(target) = std::fs::read_link(&fd) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        for suffix in ["", "-wal"] {
            let original = PathBuf::from(format!("{}{suffix}", db.display()));
            if target == format!("{} (deleted)", original.display())
                && !rescued.iter().any(|(_, to)| *to == original)
            {
                let copy = into.join(original.file_name().unwrap());
                std::fs::copy(&fd, &copy).unwrap();
                rescued.push((copy, original));
            }
        }
    }
    assert!(
        rescued.iter().any(|(_, to)| to == db),
        "the deleted database is still open in the process"
    );
    rescued
}
