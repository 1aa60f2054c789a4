//! Backups and restores on real SQLite files with the real binary: `hale backup` while a running hale probes
//! real local targets and writes, `hale restore` into a fresh path and over a stopped hale's database, the
//! refusals (hale running, a corrupt, truncated, foreign or newer backup), `POST /backup` on the Boss API,
//! the backup folder's pruning and a second `hale serve` on one database. Every count is read from the
//! database files with SQL, never taken from hale's own answers alone.

// A test crate: an unwrap is an assertion, and tests/common sets a child's rlimit in `pre_exec`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use hale::kind::ServiceKind;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use common::app::client;
use common::config::{tcp_targets_config, test_config_json};
use common::db::{count_check_rows, open_read_only};
use common::eventually;
use common::process::{exit_code, run_hale, HaleProcess, Tmpfs};
use common::receivers::CountingTarget;

/// The admin token `POST /backup` needs in these tests.
const ADMIN_TOKEN: &str = "backup-admin-token-0123456789";

/// `n` TCP targets on one local port, each checked every second, and the given `backup` section.
fn config(target: SocketAddr, n: usize, backup: Value) -> Value {
    let mut config = tcp_targets_config(target, n);
    config["backup"] = backup;
    config
}

async fn integrity(db: &Path) -> String {
    let mut conn = open_read_only(db).await;
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .expect("integrity_check");
    let _ = conn.close().await;
    verdict.join("; ")
}

/// One stored health check, every column.
type CheckRow = (
    i64,
    i64,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    String,
    String,
);

/// Every health check, by time, service and `seq` (what tells apart checks of one service in one millisecond).
async fn all_checks(db: &Path) -> Vec<CheckRow> {
    let mut conn = open_read_only(db).await;
    let rows = sqlx::query_as(
        "SELECT seq, checked_at_ms, service, outcome, http_status, latency_us, error, breaker_state, source \
         FROM health_checks ORDER BY checked_at_ms, service, seq",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read health checks");
    let _ = conn.close().await;
    rows
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn wait_for_rows(db: &Path, more_than: i64) -> i64 {
    eventually(&format!("more than {more_than} checks stored"), || async {
        let n = count_check_rows(db, "1 = 1").await;
        (n > more_than).then_some(n)
    })
    .await
}

async fn stop(hale: &mut HaleProcess) {
    hale.signal("TERM");
    let status = hale.wait_exit(common::DEADLINE).await;
    assert_eq!(exit_code(status), 0, "stderr: {:?}", hale.stderr_lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_hale_probes_and_writes_restores_every_check_up_to_it() {
    let target = CountingTarget::start().await;
    let mut serving = HaleProcess::serve(&config(target.addr, 30, json!({})), &[]).await;
    serving.wait_listening(&ServiceKind::ALL).await;
    let db = serving.db_path.clone();
    wait_for_rows(&db, 60).await;

    let work = tempfile::tempdir().expect("temp dir");
    let backup = work.path().join("hale-live.db.gz");
    let held_before = count_check_rows(&db, "1 = 1").await;
    let out = run_hale(
        work.path(),
        &["backup", "--db", s(&db), "--out", s(&backup)],
    )
    .await;
    let held_after = count_check_rows(&db, "1 = 1").await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("wrote {}", backup.display())),
        "{stdout}"
    );
    assert!(stdout.contains("integrity_check ok"), "{stdout}");
    // hale goes on writing after the backup.
    wait_for_rows(&db, held_after + 30).await;

    let fresh = work.path().join("restored").join("hale.db");
    let out = run_hale(work.path(), &["restore", s(&backup), "--db", s(&fresh)]).await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("there was no database at {}", fresh.display())),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(integrity(&fresh).await, "ok");
    let restored = count_check_rows(&fresh, "1 = 1").await;
    // The copy is one instant of the live database, between the two counts taken around the backup.
    assert!(
        (held_before..=held_after).contains(&restored),
        "the backup holds {restored} checks; the live database held {held_before} before and {held_after} after"
    );

    stop(&mut serving).await;
    assert!(
        count_check_rows(&db, "1 = 1").await > restored,
        "the live database went on after the backup"
    );
    let live: std::collections::HashSet<CheckRow> = all_checks(&db).await.into_iter().collect();
    let copy = all_checks(&fresh).await;
    assert_eq!(copy.len() as i64, restored);
    let missing = copy.iter().filter(|row| !live.contains(*row)).count();
    assert_eq!(
        missing, 0,
        "every check in the backup is in the live database, column for column"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_refused_while_hale_runs_on_the_database_and_nothing_is_touched() {
    let target = CountingTarget::start().await;
    let mut serving = HaleProcess::serve(&config(target.addr, 5, json!({})), &[]).await;
    let addrs = serving.wait_listening(&ServiceKind::ALL).await;
    let db = serving.db_path.clone();
    wait_for_rows(&db, 5).await;
    let work = tempfile::tempdir().expect("temp dir");
    let backup = work.path().join("b.db.gz");
    let out = run_hale(
        work.path(),
        &["backup", "--db", s(&db), "--out", s(&backup)],
    )
    .await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));

    let folder = db.parent().expect("a folder").to_owned();
    let before = names(&folder);
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&db).expect("stat"));
    let out = run_hale(work.path(), &["restore", s(&backup), "--db", s(&db)]).await;
    let stderr = text(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "hale: hale (pid {}) is running on {}; stop it before restoring",
            serving.pid,
            db.display()
        )
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(names(&folder), before, "no file was added or moved");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&db).expect("stat")),
        inode,
        "the database file is the one hale opened"
    );
    let res = client()
        .get(format!(
            "http://{}/health",
            addrs[&ServiceKind::HealthProxy]
        ))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(res.status().as_u16(), 200, "hale is unharmed");
    stop(&mut serving).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_over_a_stopped_hale_keeps_the_replaced_database_aside_and_hale_starts_on_the_backup(
) {
    let target = CountingTarget::start().await;
    let conf = config(target.addr, 10, json!({}));
    let mut serving = HaleProcess::serve(&conf, &[]).await;
    serving.wait_listening(&ServiceKind::ALL).await;
    let db = serving.db_path.clone();
    wait_for_rows(&db, 10).await;
    let work = tempfile::tempdir().expect("temp dir");
    let backup = work.path().join("b.db.gz");
    let out = run_hale(
        work.path(),
        &["backup", "--db", s(&db), "--out", s(&backup)],
    )
    .await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    let in_backup = {
        let probe = work.path().join("probe").join("hale.db");
        let out = run_hale(work.path(), &["restore", s(&backup), "--db", s(&probe)]).await;
        assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
        count_check_rows(&probe, "1 = 1").await
    };
    wait_for_rows(&db, in_backup + 20).await;
    stop(&mut serving).await;
    let replaced = count_check_rows(&db, "1 = 1").await;
    assert!(replaced > in_backup);

    let out = run_hale(work.path(), &["restore", s(&backup), "--db", s(&db)]).await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let kept_line = stdout
        .lines()
        .find(|l| l.starts_with("kept the database it replaces as "))
        .unwrap_or_else(|| panic!("the restore says where the old database went: {stdout}"));
    let kept = PathBuf::from(
        kept_line
            .trim_start_matches("kept the database it replaces as ")
            .split(" (and ")
            .next()
            .expect("a path"),
    );
    let name = kept
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("hale.db.before-restore-"), "{name}");
    assert_eq!(kept.parent(), db.parent(), "kept beside the database");
    assert!(
        stdout.contains(&format!("restored {}", db.display())),
        "{stdout}"
    );
    assert_eq!(
        count_check_rows(&kept, "1 = 1").await,
        replaced,
        "the replaced database is whole"
    );
    assert_eq!(integrity(&kept).await, "ok");
    assert_eq!(count_check_rows(&db, "1 = 1").await, in_backup);
    assert_eq!(integrity(&db).await, "ok");

    // hale starts on the restored file and keeps writing into it.
    let mut again = HaleProcess::serve_db(&conf, Some(&db), &[], &[]).await;
    again.wait_listening(&ServiceKind::ALL).await;
    wait_for_rows(&db, in_backup + 10).await;
    stop(&mut again).await;
    assert_eq!(integrity(&db).await, "ok");
}

/// Gzips `bytes` into `path`.
fn gzip(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("compress");
    std::fs::write(path, encoder.finish().expect("compress")).expect("write");
}

fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_end(&mut out)
        .expect("decompress");
    out
}

/// Runs SQL on a database file through a connection of the test's own (creating the file).
async fn execute(db: &Path, sql: &str) {
    let options = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .expect("open");
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .expect("run SQL");
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_truncated_foreign_or_newer_backup_is_refused_and_the_database_is_untouched() {
    let target = CountingTarget::start().await;
    let mut serving = HaleProcess::serve(&config(target.addr, 5, json!({})), &[]).await;
    serving.wait_listening(&ServiceKind::ALL).await;
    let db = serving.db_path.clone();
    wait_for_rows(&db, 10).await;
    stop(&mut serving).await;

    let work = tempfile::tempdir().expect("temp dir");
    let good = work.path().join("good.db.gz");
    let out = run_hale(work.path(), &["backup", "--db", s(&db), "--out", s(&good)]).await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    let good_bytes = std::fs::read(&good).expect("read the backup");
    let plain = gunzip(&good);

    let truncated = work.path().join("truncated.db.gz");
    std::fs::write(&truncated, &good_bytes[..good_bytes.len() / 2]).expect("write");
    let not_sqlite = work.path().join("notes.gz");
    gzip(
        &not_sqlite,
        b"these are not the pages you are looking for\n",
    );
    let neither = work.path().join("config.json");
    std::fs::write(&neither, b"{}").expect("write");
    // Every b-tree page header after the first page overwritten: SQLite reports the file as malformed.
    let corrupt = work.path().join("corrupt.db.gz");
    let mut damaged = plain.clone();
    let page = u16::from_be_bytes([damaged[16], damaged[17]]) as usize;
    for start in (page..damaged.len()).step_by(page) {
        damaged[start..start + 5].copy_from_slice(&[0x0d, 0x00, 0x00, 0xff, 0xff]);
    }
    gzip(&corrupt, &damaged);
    let foreign = work.path().join("foreign.db");
    execute(
        &foreign,
        "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi')",
    )
    .await;
    let newer = work.path().join("newer.db");
    std::fs::write(&newer, &plain).expect("write");
    execute(
        &newer,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .await;

    let folder = db.parent().expect("a folder").to_owned();
    let before_names = names(&folder);
    let before_bytes = std::fs::read(&db).expect("read the database");
    let cases: [(&Path, String); 6] = [
        (
            &truncated,
            format!(
                "{} is not a hale backup: it is not a complete gzip file",
                truncated.display()
            ),
        ),
        (
            &not_sqlite,
            format!(
                "{} is not a hale backup: it is not a SQLite database",
                not_sqlite.display()
            ),
        ),
        (
            &neither,
            format!(
                "{} is not a hale backup: it is neither a gzip file nor a SQLite database",
                neither.display()
            ),
        ),
        (
            &corrupt,
            format!("{} fails PRAGMA integrity_check", corrupt.display()),
        ),
        (
            &foreign,
            format!(
                "{} is not a hale database: it has no table _sqlx_migrations",
                foreign.display()
            ),
        ),
        (
            &newer,
            format!(
                "{} was written by a newer hale (migration 9999 is unknown to this version)",
                newer.display()
            ),
        ),
    ];
    for (file, expected) in cases {
        let out = run_hale(work.path(), &["restore", s(file), "--db", s(&db)]).await;
        let stderr = text(&out.stderr);
        assert_eq!(exit_code(out.status), 2, "{}: {stderr}", file.display());
        assert!(
            stderr.starts_with(&format!("hale: {expected}")),
            "{}: {stderr}",
            file.display()
        );
        assert_eq!(
            names(&folder),
            before_names,
            "{}: no file added or moved",
            file.display()
        );
        assert!(
            std::fs::read(&db).expect("read the database") == before_bytes,
            "{}: the database is untouched",
            file.display()
        );
    }
    // The good backup still restores: the refusals were about the files, not the place.
    let out = run_hale(work.path(), &["restore", s(&good), "--db", s(&db)]).await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_backup_answers_json_keeps_the_newest_and_its_file_restores() {
    let target = CountingTarget::start().await;
    let work = tempfile::tempdir().expect("temp dir");
    let folder = work.path().join("backups");
    let mut conf = config(target.addr, 10, json!({"dir": s(&folder), "keep": 2}));
    // POST /backup needs the admin role.
    conf["auth"] = json!({"tokens": {"admin": {"env": "HALE_BACKUP_ADMIN"}}});
    let mut serving =
        HaleProcess::serve_with_env(&conf, &[], &[("HALE_BACKUP_ADMIN", ADMIN_TOKEN)]).await;
    let addrs = serving.wait_listening(&ServiceKind::ALL).await;
    let db = serving.db_path.clone();
    wait_for_rows(&db, 20).await;

    let client = client();
    let url = format!("http://{}/backup", addrs[&ServiceKind::BossApi]);
    let mut answers = Vec::new();
    for _ in 0..3 {
        let res = client
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("POST /backup");
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().expect("ascii"),
            "application/json"
        );
        let body: Value = res.json().await.expect("JSON body");
        answers.push(body);
    }
    for body in &answers {
        assert_eq!(body["integrity"], json!("ok"), "{body}");
        assert_eq!(
            body["schema_version"],
            json!(hale::store::MIGRATOR.iter().count()),
            "{body}"
        );
        assert!(
            body["tables"]["health_checks"].as_i64().expect("rows") > 0,
            "{body}"
        );
        assert!(body["duration_ms"].is_u64(), "{body}");
        assert!(body["database_bytes"].as_u64().expect("size") > 0, "{body}");
    }
    let paths: Vec<PathBuf> = answers
        .iter()
        .map(|b| PathBuf::from(b["path"].as_str().expect("path")))
        .collect();
    assert!(paths.iter().all(|p| p.starts_with(&folder)), "{paths:?}");
    // The third backup removed the first: the folder keeps the newest two.
    assert_eq!(answers[0]["pruned"], json!([]));
    assert_eq!(answers[1]["pruned"], json!([]));
    assert_eq!(answers[2]["pruned"], json!([s(&paths[0])]));
    let mut expected: Vec<String> = paths[1..]
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(names(&folder), expected);

    let last = &answers[2];
    let file = &paths[2];
    assert_eq!(
        last["bytes"].as_u64(),
        Some(std::fs::metadata(file).expect("the backup exists").len())
    );
    let fresh = work.path().join("fresh").join("hale.db");
    let out = run_hale(work.path(), &["restore", s(file), "--db", s(&fresh)]).await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    assert_eq!(integrity(&fresh).await, "ok");
    assert_eq!(
        Some(count_check_rows(&fresh, "1 = 1").await),
        last["tables"]["health_checks"].as_i64()
    );
    // Checks have no global id since the compact store; the newest check tells up to when the copy goes.
    assert_eq!(last["max_check_id"], serde_json::Value::Null);
    assert!(last["newest_check_at"].as_str().is_some(), "{last}");
    stop(&mut serving).await;
    let logged = serving
        .json_logs()
        .into_iter()
        .filter(|l| l["message"] == "backup written")
        .count();
    assert_eq!(logged, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hale_backup_without_out_writes_beside_the_database_and_keeps_the_configured_number() {
    let work = tempfile::tempdir().expect("temp dir");
    let db = work.path().join("data").join("hale.db");
    hale::store::Store::open(&db)
        .await
        .expect("create the database")
        .close()
        .await;
    let conf = work.path().join("config.json");
    let mut config = test_config_json();
    config["backup"] = json!({"keep": 2});
    std::fs::write(&conf, config.to_string()).expect("write the config");

    let mut written = Vec::new();
    for round in 0..3 {
        let out = run_hale(
            work.path(),
            &["backup", "--config", s(&conf), "--db", s(&db)],
        )
        .await;
        assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let path = stdout
            .lines()
            .find_map(|l| l.strip_prefix("wrote "))
            .and_then(|l| l.split(": ").next())
            .unwrap_or_else(|| panic!("round {round}: {stdout}"))
            .to_owned();
        written.push(path);
        if round == 2 {
            assert!(
                stdout.contains(&format!(
                    "removed {} (the folder keeps the newest 2)",
                    written[0]
                )),
                "{stdout}"
            );
        }
    }
    let folder = work.path().join("data").join("backups");
    let mut expected: Vec<String> = written[1..]
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    expected.sort();
    assert_eq!(names(&folder), expected);
    assert!(expected
        .iter()
        .all(|n| n.starts_with("hale-") && n.ends_with(".db.gz")));

    // A config that does not validate stops the backup before anything is written.
    config["backup"] = json!({"keep": 0});
    std::fs::write(&conf, config.to_string()).expect("write the config");
    let out = run_hale(
        work.path(),
        &["backup", "--config", s(&conf), "--db", s(&db)],
    )
    .await;
    assert_eq!(exit_code(out.status), 2);
    assert!(
        text(&out.stderr).contains("$.backup.keep: 0 is out of range 1..=1000"),
        "{}",
        text(&out.stderr)
    );
    // No database, no backup.
    let out = run_hale(
        work.path(),
        &["backup", "--db", "missing/hale.db", "--out", "x.db.gz"],
    )
    .await;
    assert_eq!(exit_code(out.status), 2);
    assert_eq!(
        text(&out.stderr).trim(),
        "hale: there is no database at missing/hale.db"
    );
    assert!(!work.path().join("missing").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hale_serve_on_the_same_database_exits_2_naming_the_first() {
    let mut first = HaleProcess::serve(&test_config_json(), &[]).await;
    let addrs = first.wait_listening(&ServiceKind::ALL).await;
    let db = first.db_path.clone();
    let conf = first.dir.path().join("config.json");
    let out = run_hale(
        first.dir.path(),
        &["serve", "--config", s(&conf), "--db", s(&db)],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "hale: database {} is in use by another hale (pid {}); two hale processes cannot share one database: stop the other one or give this one another --db",
            db.display(),
            first.pid
        )
    );
    let res = client()
        .get(format!("http://{}/health", addrs[&ServiceKind::BossApi]))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(res.status().as_u16(), 200, "the first hale is unharmed");
    stop(&mut first).await;

    // Once the first has stopped, the lock is free again.
    let mut second = HaleProcess::serve_db(&test_config_json(), Some(&db), &[], &[]).await;
    second.wait_listening(&ServiceKind::ALL).await;
    stop(&mut second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_backup_that_cannot_write_its_folder_is_a_503_saying_why_and_writes_nothing() {
    let work = tempfile::tempdir().expect("temp dir");
    let blocker = work.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").expect("write");
    let mut config = common::config::test_config();
    config.backup.dir = Some(blocker.join("backups"));
    std::env::set_var("HALE_BACKUP_ADMIN_503", ADMIN_TOKEN);
    config.auth.tokens.admin = Some(hale::config::TokenSource::Env(
        "HALE_BACKUP_ADMIN_503".to_owned(),
    ));
    let mut app = common::app::spawn_app_with(config).await;
    let res = app
        .request(reqwest::Method::POST, ServiceKind::BossApi, "/backup")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("POST /backup");
    assert_eq!(res.status().as_u16(), 503);
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(body["error"]["code"], json!("unavailable"), "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(
        message.starts_with(&format!(
            "backup failed: cannot create the folder {}",
            blocker.join("backups").display()
        )),
        "{message}"
    );
    app.shutdown().await;
    assert_eq!(names(work.path()), ["a-file"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_onto_a_full_disk_exits_1_says_so_and_leaves_nothing_behind() {
    let work = tempfile::tempdir().expect("temp dir");
    let db = work.path().join("hale.db");
    hale::store::Store::open(&db)
        .await
        .expect("create the database")
        .close()
        .await;
    // Smaller than the database's copy.
    let disk = Tmpfs::mount("16k");
    let out_file = disk.path.join("hale.db.gz");
    let out = run_hale(
        work.path(),
        &["backup", "--db", s(&db), "--out", s(&out_file)],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(exit_code(out.status), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "hale: cannot write the copy {}",
            disk.path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("full"), "{stderr}");
    assert_eq!(
        names(&disk.path),
        Vec::<String>::new(),
        "no file left behind"
    );
}

/// `hale history generate` into `dir/NAME`: a real hale database without a running hale.
async fn generated_db(dir: &Path, name: &str) -> PathBuf {
    let db = dir.join(name);
    let out = run_hale(
        dir,
        &[
            "history",
            "generate",
            "--db",
            s(&db),
            "--services",
            "3",
            "--days",
            "2",
            "--interval-s",
            "60",
        ],
    )
    .await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    db
}

/// A gzip of `head` then `zeros_mib` MiB of zeros, compressed hard (about a thousand to one).
fn gzip_of_zeros(path: &Path, head: &[u8], zeros_mib: usize) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("create");
    let mut encoder = GzEncoder::new(std::io::BufWriter::new(file), Compression::best());
    encoder.write_all(head).expect("compress");
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..zeros_mib {
        encoder.write_all(&chunk).expect("compress");
    }
    encoder.finish().expect("compress").flush().expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_at_its_cap_and_a_gzip_of_something_else_after_16_bytes() {
    let work = tempfile::tempdir().expect("temp dir");
    let source = generated_db(work.path(), "source.db").await;
    let good = work.path().join("good.db.gz");
    let out = run_hale(
        work.path(),
        &["backup", "--db", s(&source), "--out", s(&good)],
    )
    .await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));

    // The restores go into a folder of their own, so "nothing written" is a listing of it.
    let folder = work.path().join("restored");
    std::fs::create_dir(&folder).expect("mkdir");
    let db = folder.join("hale.db");

    // SQLite's header, then 256 MiB of zeros: about 256 KiB of gzip, so the cap is its floor of 64 MiB.
    let bomb = work.path().join("bomb.db.gz");
    gzip_of_zeros(&bomb, b"SQLite format 3\0", 256);
    let bomb_bytes = std::fs::metadata(&bomb).expect("stat").len();
    assert!(bomb_bytes * 20 < 64 << 20, "{bomb_bytes}");
    let started = std::time::Instant::now();
    let out = run_hale(work.path(), &["restore", s(&bomb), "--db", s(&db)]).await;
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "hale: {} unpacks to more than 67108864 bytes (64.0 MiB), the cap: the floor of 64.0 MiB, \
             more than 20 times the backup's {bomb_bytes} bytes; pass --max-size to allow more; nothing was restored",
            bomb.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        names(&folder),
        ["hale.db.lock"],
        "nothing but the lock file"
    );
    eprintln!("the bomb was refused in {took:?}");

    // The cap can be set lower (or higher) by hand.
    let out = run_hale(
        work.path(),
        &["restore", s(&bomb), "--db", s(&db), "--max-size", "1M"],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(
        stderr.contains("unpacks to more than 1048576 bytes (1.0 MiB), the cap: set by --max-size"),
        "{stderr}"
    );
    assert_eq!(names(&folder), ["hale.db.lock"]);

    // A gzip of zeros, cut in half: refused after its first 16 bytes, so the cut is never reached.
    let zeros = work.path().join("zeros.gz");
    gzip_of_zeros(&zeros, b"", 64);
    let whole = std::fs::read(&zeros).expect("read");
    std::fs::write(&zeros, &whole[..whole.len() / 2]).expect("write");
    let out = run_hale(work.path(), &["restore", s(&zeros), "--db", s(&db)]).await;
    let stderr = text(&out.stderr);
    assert_eq!(exit_code(out.status), 2, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "hale: {} is not a hale backup: it is not a SQLite database (the first 16 bytes it unpacks to are not SQLite's header)",
            zeros.display()
        )),
        "{stderr}"
    );
    assert_eq!(names(&folder), ["hale.db.lock"]);

    // A real backup (3 to 20 times smaller than its database) restores under the default cap.
    let out = run_hale(work.path(), &["restore", s(&good), "--db", s(&db)]).await;
    assert_eq!(exit_code(out.status), 0, "{}", text(&out.stderr));
    assert_eq!(
        count_check_rows(&db, "1 = 1").await,
        count_check_rows(&source, "1 = 1").await
    );
    assert_eq!(count_check_rows(&db, "1 = 1").await, 3 * 2 * 1440);
}
