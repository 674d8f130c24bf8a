//! The file system under the database fills up, then space comes back: a
//! tmpfs of a few megabytes holds the database, a filler file takes the
//! rest. Writes get a 507 with `Retry-After`, reads are served, readiness
//! stays up and says why writes fail, the operator is told once; once the
//! filler is deleted writes work again without a restart, and every write
//! acknowledged is there after one.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::service::Service;
use crate::writes::{assert_actionable, assert_all_acknowledged_present, send, student, STUDENTS};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed");
        Self(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Fills the file system of `path` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5_u8; 16 * 1024];
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    // Whatever is left, a byte at a time.
    while file.write_all(&[0]).and_then(|()| file.sync_all()).is_ok() {}
    path
}

#[tokio::test]
async fn a_full_file_system_answers_507_serves_reads_and_recovers_without_a_restart() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&dir.path().join("mnt"), "4m");
    let db = tmpfs.0.join("students.db");
    let service = Service::start(&db).await;
    let mut writes = Vec::new();
    for n in 0..20 {
        let write = send(&service, "POST", STUDENTS.to_owned(), student("before", n)).await;
        assert_eq!(write.status, 201, "{write:?}");
        writes.push(write);
    }

    let filler = fill(&tmpfs.0);
    let mut refused = 0;
    for n in 0..300 {
        let write = send(&service, "POST", STUDENTS.to_owned(), student("full", n)).await;
        if !write.acknowledged() {
            assert_actionable(&write, 507, "insufficient-storage");
            refused += 1;
        }
        writes.push(write);
    }
    assert!(refused > 0, "no write was refused on a full file system");

    let page = service.get(&format!("{STUDENTS}?limit=100")).await.unwrap();
    assert_eq!(page.status(), 200, "reads are served");
    let first = writes[0].answer["id"].clone();
    assert_eq!(
        service
            .get(&format!("{STUDENTS}/{first}"))
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = service.get("/ready").await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert!(
        ready["checks"]["storage"]
            .as_str()
            .is_some_and(|s| s.starts_with("no space left")),
        "{ready}"
    );
    let faults = service.logged("storage fault:");
    assert_eq!(faults.len(), 1, "the operator is told once: {faults:?}");
    assert_eq!(faults[0]["level"], "ERROR");
    assert_eq!(faults[0]["fault"], "full");
    assert!(
        faults[0]["error"]
            .as_str()
            .unwrap()
            .contains("database or disk is full"),
        "{faults:?}"
    );

    // Space comes back: no restart needed.
    std::fs::remove_file(filler).unwrap();
    for n in 0..20 {
        let write = send(&service, "POST", STUDENTS.to_owned(), student("after", n)).await;
        assert_eq!(write.status, 201, "{write:?}");
        writes.push(write);
    }
    let ready: Value = service.get("/ready").await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"].get("storage"), None, "{ready}");
    assert_eq!(service.logged("storage fault over").len(), 1);

    // Every acknowledged write survives a restart; no refused one was stored.
    service.stop();
    let service = Service::start(&db).await;
    assert_all_acknowledged_present(&service, &writes).await;
    let page: Value = service
        .get(&format!("{STUDENTS}?limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acknowledged = writes.iter().filter(|w| w.acknowledged()).count();
    assert_eq!(page["total"], acknowledged, "{page}");
    service.stop();
}
