//! Tests of the workflow run store on real SQLite files in temp dirs, a restart (close, reopen, recover)
//! among them.

use chrono::TimeDelta;
use serde_json::json;

use super::*;

fn t0() -> DateTime<Utc> {
    from_ms(1_780_000_000_000)
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(seconds)
}

async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("hale.db")).await.unwrap()
}

fn new_run(workflow: &str, key: Option<&str>, limit: u32) -> NewRun {
    NewRun {
        workflow: workflow.to_owned(),
        definition: json!({"id": workflow, "steps": [{"id": "a", "kind": "sleep", "duration_s": 1}]}),
        inputs: json!({"target": key.unwrap_or("api")}),
        reason: "test".to_owned(),
        concurrency_key: key.map(str::to_owned),
        concurrency_limit: limit,
        idempotency: None,
        deadline: at(3600),
        retry_of: None,
        start_step: 0,
    }
}

async fn create(store: &Store, run: &NewRun) -> StoredRun {
    match store.create_or_get(run, t0()).await.unwrap() {
        Created::New(r) => r,
        Created::Existing(r) => panic!("expected a new run, got run {}", r.id),
    }
}

#[tokio::test]
async fn a_new_run_is_queued_with_its_definition_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut new = new_run("restart", Some("api"), 2);
    new.start_step = 1;
    let run = create(&store, &new).await;
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(run.definition, new.definition);
    assert_eq!(run.inputs, json!({"target": "api"}));
    assert_eq!(
        (run.step_index, run.concurrency_limit, run.resumes),
        (1, 2, 0)
    );
    assert_eq!(
        (run.created, run.deadline, run.started),
        (t0(), at(3600), None)
    );
    assert_eq!(store.run(run.id).await.unwrap(), Some(run.clone()));
    assert_eq!(store.run(run.id + 100).await.unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn the_same_idempotency_key_finds_the_run_or_refuses_another_body() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut new = new_run("restart", None, 1);
    new.idempotency = Some(Idempotency {
        key: "k-1".into(),
        body_hash: "aaaa".into(),
    });
    let first = create(&store, &new).await;
    assert_eq!(
        store.create_or_get(&new, at(5)).await.unwrap(),
        Created::Existing(first.clone())
    );
    let mut other = new.clone();
    other.idempotency = Some(Idempotency {
        key: "k-1".into(),
        body_hash: "bbbb".into(),
    });
    let err = store.create_or_get(&other, at(5)).await.unwrap_err();
    assert!(
        matches!(&err, RunStoreError::IdempotencyConflict { run, .. } if *run == first.id),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("\"k-1\" already started run"),
        "{err}"
    );
    // The key belongs to its workflow: another workflow may use it.
    let mut elsewhere = new.clone();
    elsewhere.workflow = "drain".into();
    assert!(matches!(
        store.create_or_get(&elsewhere, at(5)).await.unwrap(),
        Created::New(_)
    ));
    store.close().await;
}

#[tokio::test]
async fn claims_respect_the_global_cap_and_each_group_limit_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let api1 = create(&store, &new_run("restart", Some("api"), 1)).await;
    let api2 = create(&store, &new_run("restart", Some("api"), 1)).await;
    let db1 = create(&store, &new_run("restart", Some("db"), 1)).await;
    let other = create(&store, &new_run("backup", None, 1)).await;

    let first = store.claim_next(10, at(1)).await.unwrap().unwrap();
    assert_eq!(
        (first.id, first.state, first.started),
        (api1.id, RunState::Running, Some(at(1)))
    );
    // api2 waits behind api1 (same group, limit 1): db1 is next.
    let second = store.claim_next(10, at(2)).await.unwrap().unwrap();
    assert_eq!(second.id, db1.id);
    // The global cap of 2 running is reached.
    assert_eq!(store.claim_next(2, at(3)).await.unwrap(), None);
    let third = store.claim_next(3, at(3)).await.unwrap().unwrap();
    assert_eq!(third.id, other.id);
    assert_eq!(
        store.claim_next(10, at(4)).await.unwrap(),
        None,
        "api2's group is full"
    );
    // A waiting run still holds its group's slot; an ended one frees it.
    store
        .wait(api1.id, WaitReason::Sleep, at(60), 0)
        .await
        .unwrap();
    assert_eq!(store.claim_next(10, at(5)).await.unwrap(), None);
    assert!(store
        .finish_run(api1.id, RunState::Succeeded, None, at(6))
        .await
        .unwrap());
    let fourth = store.claim_next(10, at(7)).await.unwrap().unwrap();
    assert_eq!(fourth.id, api2.id);
    store.close().await;
}

#[tokio::test]
async fn attempts_are_numbered_per_step_and_outputs_capped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let run = create(&store, &new_run("restart", None, 1)).await;
    let refused = store
        .start_attempt(run.id, 0, "drain", at(1))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("is queued, not running"),
        "{refused}"
    );
    store.claim_next(1, at(1)).await.unwrap();
    let a1 = store
        .start_attempt(run.id, 0, "drain", at(1))
        .await
        .unwrap();
    assert_eq!((a1.attempt, a1.state), (1, AttemptState::Running));
    store
        .finish_attempt(
            a1.id,
            AttemptEnd {
                state: AttemptState::Failed,
                output: None,
                error: Some("503 from api"),
            },
            at(2),
        )
        .await
        .unwrap();
    let a2 = store
        .start_attempt(run.id, 0, "drain", at(3))
        .await
        .unwrap();
    assert_eq!(a2.attempt, 2);
    let big = json!({"log": "x".repeat(OUTPUT_CAP_BYTES + 10)});
    store
        .finish_attempt(
            a2.id,
            AttemptEnd {
                state: AttemptState::Succeeded,
                output: Some(&big),
                error: None,
            },
            at(4),
        )
        .await
        .unwrap();
    let again = store
        .finish_attempt(
            a2.id,
            AttemptEnd {
                state: AttemptState::Failed,
                output: None,
                error: None,
            },
            at(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(again, RunStoreError::AttemptFinished(id) if id == a2.id));
    let b1 = store
        .start_attempt(run.id, 1, "restart", at(6))
        .await
        .unwrap();
    assert_eq!(b1.attempt, 1, "numbered per step");
    let small = json!({"status": 200});
    store
        .finish_attempt(
            b1.id,
            AttemptEnd {
                state: AttemptState::Succeeded,
                output: Some(&small),
                error: None,
            },
            at(7),
        )
        .await
        .unwrap();
    let all = store.attempts(run.id).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].error.as_deref(), Some("503 from api"));
    assert_eq!(
        (all[0].state, all[0].finished),
        (AttemptState::Failed, Some(at(2)))
    );
    assert_eq!(
        all[1].output.as_ref().map(String::len),
        Some(OUTPUT_CAP_BYTES)
    );
    assert!(all[1].output_truncated);
    assert_eq!(all[2].output.as_deref(), Some(r#"{"status":200}"#));
    assert!(!all[2].output_truncated);
    assert_eq!(store.run(run.id).await.unwrap().unwrap().step_index, 1);
    store.close().await;
}

#[tokio::test]
async fn waits_wake_and_runs_end_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let run = create(&store, &new_run("restart", None, 1)).await;
    store.claim_next(1, at(1)).await.unwrap();
    store
        .wait(run.id, WaitReason::Backoff, at(30), 2)
        .await
        .unwrap();
    let waiting = store.run(run.id).await.unwrap().unwrap();
    assert_eq!(
        (
            waiting.state,
            waiting.wait_reason,
            waiting.wake_at,
            waiting.step_index
        ),
        (
            RunState::Waiting,
            Some(WaitReason::Backoff),
            Some(at(30)),
            2
        )
    );
    assert!(store
        .wait(run.id, WaitReason::Sleep, at(40), 2)
        .await
        .is_err());
    store.wake(run.id).await.unwrap();
    let running = store.run(run.id).await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.wait_reason, running.wake_at),
        (RunState::Running, None, None)
    );
    let a = store.start_attempt(run.id, 2, "c", at(31)).await.unwrap();
    assert!(store
        .finish_run(
            run.id,
            RunState::Cancelled,
            Some("cancelled by operate"),
            at(32)
        )
        .await
        .unwrap());
    assert!(
        !store
            .finish_run(run.id, RunState::Failed, None, at(33))
            .await
            .unwrap(),
        "ends once"
    );
    let ended = store.run(run.id).await.unwrap().unwrap();
    assert_eq!(
        (ended.state, ended.finished),
        (RunState::Cancelled, Some(at(32)))
    );
    assert_eq!(ended.error.as_deref(), Some("cancelled by operate"));
    let attempts = store.attempts(run.id).await.unwrap();
    assert_eq!(
        (attempts[0].id, attempts[0].state),
        (a.id, AttemptState::Interrupted)
    );
    assert!(store
        .finish_run(run.id, RunState::Running, None, at(34))
        .await
        .is_err());
    assert!(matches!(
        store.wake(run.id + 9).await.unwrap_err(),
        RunStoreError::NoRun(_)
    ));
    store.close().await;
}

#[tokio::test]
async fn approvals_are_decided_once_with_role_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let run = create(&store, &new_run("wipe", None, 1)).await;
    let asked = store
        .request_approval(&NewApproval {
            run_id: run.id,
            step_index: 1,
            step_id: "wipe".into(),
            risk: RiskLevel::High,
            requested: at(1),
            expires: at(8 * 3600),
        })
        .await
        .unwrap();
    assert_eq!((asked.decision, asked.expires), (None, at(8 * 3600)));
    let decided = store
        .decide_approval(
            run.id,
            1,
            Decision {
                decision: ApprovalDecision::Approved,
                role: Some("operate"),
                reason: Some("change 42"),
            },
            at(60),
        )
        .await
        .unwrap();
    assert_eq!(decided.decision, Some(ApprovalDecision::Approved));
    assert_eq!(decided.decided_by_role, Some("operate"));
    assert_eq!(
        (decided.reason.as_deref(), decided.decided),
        (Some("change 42"), Some(at(60)))
    );
    let twice = store
        .decide_approval(
            run.id,
            1,
            Decision {
                decision: ApprovalDecision::Rejected,
                role: Some("admin"),
                reason: None,
            },
            at(61),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        twice,
        RunStoreError::NoOpenApproval { step_index: 1, .. }
    ));
    assert_eq!(store.approvals(run.id).await.unwrap(), vec![decided]);
    store.close().await;
}

#[tokio::test]
async fn a_restart_interrupts_running_attempts_and_times_out_late_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (resumable, late, sleeping, queued, done);
    {
        let store = open(&dir).await;
        resumable = create(&store, &new_run("a", Some("1"), 1)).await;
        let mut short = new_run("a", Some("2"), 1);
        short.deadline = at(100);
        late = create(&store, &short).await;
        sleeping = create(&store, &new_run("a", Some("3"), 1)).await;
        done = create(&store, &new_run("a", Some("4"), 1)).await;
        queued = create(&store, &new_run("a", Some("1"), 1)).await;
        for _ in 0..4 {
            store.claim_next(10, at(1)).await.unwrap().unwrap();
        }
        store
            .start_attempt(resumable.id, 0, "a", at(2))
            .await
            .unwrap();
        store.start_attempt(late.id, 0, "a", at(2)).await.unwrap();
        store
            .wait(sleeping.id, WaitReason::Sleep, at(600), 1)
            .await
            .unwrap();
        store
            .finish_run(done.id, RunState::Succeeded, None, at(3))
            .await
            .unwrap();
        // hale stops here: the attempts of `resumable` and `late` are left running.
        store.close().await;
    }
    let store = open(&dir).await;
    let recovery = store.recover_at_start(at(200)).await.unwrap();
    assert_eq!(recovery.timed_out, vec![late.id]);
    let interrupted: Vec<(RunId, u32, AttemptState)> = recovery
        .interrupted
        .iter()
        .map(|a| (a.run_id, a.attempt, a.state))
        .collect();
    assert_eq!(
        interrupted,
        vec![(resumable.id, 1, AttemptState::Interrupted)]
    );
    assert_eq!(
        recovery.running.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![resumable.id]
    );
    assert_eq!(
        recovery
            .waiting
            .iter()
            .map(|r| (r.id, r.wake_at))
            .collect::<Vec<_>>(),
        vec![(sleeping.id, Some(at(600)))],
        "a sleep keeps its stored wake time"
    );
    let late_now = store.run(late.id).await.unwrap().unwrap();
    assert_eq!(
        (late_now.state, late_now.finished),
        (RunState::TimedOut, Some(at(200)))
    );
    assert_eq!(
        store.attempts(late.id).await.unwrap()[0].state,
        AttemptState::Interrupted
    );
    assert_eq!(
        store.run(queued.id).await.unwrap().unwrap().state,
        RunState::Queued
    );
    assert_eq!(
        store.run(done.id).await.unwrap().unwrap().state,
        RunState::Succeeded
    );
    assert_eq!(store.mark_resumed(resumable.id).await.unwrap(), 1);
    assert_eq!(store.mark_resumed(resumable.id).await.unwrap(), 2);
    // The interrupted attempt is never reopened: the next attempt of the step is number 2.
    let next = store
        .start_attempt(resumable.id, 0, "a", at(201))
        .await
        .unwrap();
    assert_eq!(next.attempt, 2);
    // A second recovery finds the resumed attempt running (hale stopped again) and nothing else to do.
    let again = store.recover_at_start(at(202)).await.unwrap();
    assert_eq!(again.timed_out, Vec::<RunId>::new());
    assert_eq!(
        again.interrupted.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![next.id]
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_take_each_run_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            create(&store, &new_run("w", Some(&i.to_string()), 1))
                .await
                .id,
        );
    }
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(run) = store.claim_next(1_000, at(1)).await.unwrap() {
                mine.push(run.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    claimed.sort_unstable();
    assert_eq!(claimed, ids, "every run claimed once, none twice");
    store.close().await;
}

// The reads of the routes and the engine, and retention.

/// A run created at `created`, with room in its group for many.
async fn create_at(
    store: &Store,
    workflow: &str,
    key: Option<&str>,
    created: DateTime<Utc>,
) -> StoredRun {
    match store
        .create_or_get(&new_run(workflow, key, 100), created)
        .await
        .unwrap()
    {
        Created::New(r) => r,
        Created::Existing(r) => panic!("expected a new run, got run {}", r.id),
    }
}

/// A new run taken to `running` (no other run may be queued: the oldest queued run is claimed).
async fn running(store: &Store, workflow: &str, key: Option<&str>) -> StoredRun {
    let run = create_at(store, workflow, key, t0()).await;
    let claimed = store.claim_next(1000, at(1)).await.unwrap().unwrap();
    assert_eq!(claimed.id, run.id, "no other run was queued");
    claimed
}

/// A new run taken to `waiting` until `wake`.
async fn waiting(
    store: &Store,
    workflow: &str,
    key: Option<&str>,
    wake: DateTime<Utc>,
) -> StoredRun {
    let run = running(store, workflow, key).await;
    store
        .wait(run.id, WaitReason::Sleep, wake, 0)
        .await
        .unwrap();
    store.run(run.id).await.unwrap().unwrap()
}

/// A new run ended `state` at `finished`.
async fn finished(
    store: &Store,
    workflow: &str,
    state: RunState,
    finished: DateTime<Utc>,
) -> StoredRun {
    let run = create_at(store, workflow, None, t0()).await;
    assert!(store
        .finish_run(run.id, state, None, finished)
        .await
        .unwrap());
    store.run(run.id).await.unwrap().unwrap()
}

fn ids(runs: &[StoredRun]) -> Vec<RunId> {
    runs.iter().map(|r| r.id).collect()
}

/// Every page of `filter` (its `before` ignored), following the cursor until a page is not full.
async fn all_pages(store: &Store, filter: &RunFilter) -> Vec<Vec<RunId>> {
    let mut filter = RunFilter {
        before: None,
        ..filter.clone()
    };
    let mut pages = Vec::new();
    loop {
        let page = store.list_runs(&filter).await.unwrap();
        let full = page.len() == filter.limit as usize;
        filter.before = page.last().map(|r| r.id);
        pages.push(ids(&page));
        if !full {
            return pages;
        }
    }
}

#[tokio::test]
async fn the_cursor_pages_newest_first_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // 25 runs of deploy (failed, cancelled, queued in turn) among 5 of backup.
    let mut deploy = Vec::new();
    let mut every = Vec::new();
    for i in 0..25 {
        let run = create_at(&store, "deploy", None, at(i)).await;
        match i % 3 {
            0 => assert!(store
                .finish_run(run.id, RunState::Failed, None, at(i))
                .await
                .unwrap()),
            1 => assert!(store
                .finish_run(run.id, RunState::Cancelled, None, at(i))
                .await
                .unwrap()),
            _ => {}
        }
        deploy.push(store.run(run.id).await.unwrap().unwrap());
        every.push(run.id);
        if i % 5 == 0 {
            every.push(create_at(&store, "backup", None, at(i)).await.id);
        }
    }
    let newest_first = |runs: Vec<RunId>| -> Vec<RunId> { runs.into_iter().rev().collect() };

    let filter = RunFilter {
        workflow: Some("deploy".into()),
        states: Vec::new(),
        before: None,
        limit: 10,
    };
    let pages = all_pages(&store, &filter).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [10, 10, 5],
        "{pages:?}"
    );
    assert_eq!(pages.concat(), newest_first(ids(&deploy)));

    // A state filter pages the same way: every failed or queued deploy run, once, in order.
    let some = RunFilter {
        states: vec![RunState::Failed, RunState::Queued],
        limit: 4,
        ..filter.clone()
    };
    let expected: Vec<RunId> = deploy
        .iter()
        .rev()
        .filter(|r| matches!(r.state, RunState::Failed | RunState::Queued))
        .map(|r| r.id)
        .collect();
    assert_eq!(expected.len(), 17);
    let pages = all_pages(&store, &some).await;
    assert_eq!(pages.len(), 5, "4 + 4 + 4 + 4 + 1: {pages:?}");
    assert_eq!(pages.concat(), expected);

    // Every workflow: all 30 runs; exactly 3 full pages, then an empty one.
    let pages = all_pages(
        &store,
        &RunFilter {
            workflow: None,
            ..filter.clone()
        },
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [10, 10, 10, 0]
    );
    assert_eq!(pages.concat(), newest_first(every));

    assert!(store
        .list_runs(&RunFilter {
            limit: 0,
            ..filter.clone()
        })
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_runs(&RunFilter {
            workflow: Some("nothing".into()),
            ..filter
        })
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

#[tokio::test]
async fn the_latest_run_and_the_counts_per_state_are_per_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    running(&store, "deploy", None).await;
    waiting(&store, "deploy", Some("api"), at(60)).await;
    finished(&store, "deploy", RunState::Failed, at(5)).await;
    finished(&store, "deploy", RunState::Failed, at(6)).await;
    finished(&store, "deploy", RunState::Succeeded, at(7)).await;
    create_at(&store, "deploy", None, at(8)).await;
    let last = create_at(&store, "deploy", None, at(9)).await;
    let other = create_at(&store, "backup", None, at(10)).await;

    assert_eq!(store.latest_run("deploy").await.unwrap(), Some(last));
    assert_eq!(store.latest_run("backup").await.unwrap(), Some(other));
    assert_eq!(store.latest_run("nothing").await.unwrap(), None);

    let counts = store.state_counts("deploy").await.unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [
            (RunState::Queued, 2),
            (RunState::Running, 1),
            (RunState::Waiting, 1),
            (RunState::Succeeded, 1),
            (RunState::Failed, 2),
            (RunState::TimedOut, 0),
            (RunState::Cancelled, 0),
            (RunState::Interrupted, 0),
        ],
        "every state, in order, zeros too"
    );
    let none = store.state_counts("nothing").await.unwrap();
    assert_eq!(none.len(), RunState::ALL.len());
    assert!(none.values().all(|n| *n == 0));
    store.close().await;
}

#[tokio::test]
async fn the_summary_counts_runs_and_failures_in_the_last_24_hours() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = at(3 * 86_400);
    let day = TimeDelta::hours(24);
    let ms = TimeDelta::milliseconds(1);
    assert_eq!(store.summary(now).await.unwrap(), RunSummary::default());

    running(&store, "deploy", Some("api")).await;
    waiting(&store, "deploy", Some("db"), at(90)).await;
    running(&store, "backup", None).await;
    // deploy's failures: 24 h before now is out, a millisecond later is in, now is in.
    finished(&store, "deploy", RunState::Failed, now - day - day).await;
    finished(&store, "deploy", RunState::Failed, now - day).await;
    finished(&store, "deploy", RunState::Failed, now - day + ms).await;
    finished(
        &store,
        "deploy",
        RunState::Interrupted,
        now - TimeDelta::hours(1),
    )
    .await;
    let last = finished(&store, "deploy", RunState::TimedOut, now).await;
    finished(
        &store,
        "deploy",
        RunState::Cancelled,
        now - TimeDelta::seconds(10),
    )
    .await;
    finished(
        &store,
        "deploy",
        RunState::Succeeded,
        now - TimeDelta::seconds(5),
    )
    .await;
    // backup's only ended run finished after `now` (a clock set back): the last, not a failure of the day.
    let late = finished(&store, "backup", RunState::Failed, now + ms).await;
    // Two queued runs; the oldest is the one created first, whatever its id.
    create_at(&store, "report", None, now - TimeDelta::minutes(3)).await;
    create_at(&store, "report", None, now - TimeDelta::minutes(7)).await;
    // Approvals: two asked, one decided.
    for (step, run) in [(1, last.id), (2, late.id)] {
        store
            .request_approval(&NewApproval {
                run_id: run,
                step_index: step,
                step_id: "ask".into(),
                risk: RiskLevel::High,
                requested: at(1),
                expires: at(99),
            })
            .await
            .unwrap();
    }
    store
        .decide_approval(
            late.id,
            2,
            Decision {
                decision: ApprovalDecision::Rejected,
                role: Some("operate"),
                reason: None,
            },
            at(2),
        )
        .await
        .unwrap();

    let summary = store.summary(now).await.unwrap();
    assert_eq!(
        (summary.running, summary.waiting, summary.queued),
        (2, 1, 2)
    );
    assert_eq!(summary.oldest_queued, Some(now - TimeDelta::minutes(7)));
    assert_eq!(summary.approvals_waiting, 1);
    assert_eq!(
        summary.workflows,
        [
            WorkflowSummary {
                workflow: "backup".into(),
                last_finished: Some((late.id, RunState::Failed, now + ms)),
                failed_24h: 0,
                in_progress: 1,
            },
            WorkflowSummary {
                workflow: "deploy".into(),
                last_finished: Some((last.id, RunState::TimedOut, now)),
                failed_24h: 3,
                in_progress: 2,
            },
            WorkflowSummary {
                workflow: "report".into(),
                last_finished: None,
                failed_24h: 0,
                in_progress: 0,
            },
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn due_waits_come_earliest_wake_first_and_next_wake_is_the_earliest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert_eq!(store.next_wake().await.unwrap(), None);
    let w50 = waiting(&store, "deploy", None, at(50)).await;
    let w20 = waiting(&store, "deploy", None, at(20)).await;
    let w80 = waiting(&store, "backup", None, at(80)).await;
    running(&store, "deploy", None).await;
    finished(&store, "deploy", RunState::Cancelled, at(5)).await;

    assert_eq!(store.next_wake().await.unwrap(), Some(at(20)));
    assert!(store.due_waits(at(19)).await.unwrap().is_empty());
    assert_eq!(
        ids(&store.due_waits(at(50)).await.unwrap()),
        [w20.id, w50.id],
        "a wake time equal to now is due"
    );
    assert_eq!(
        ids(&store.due_waits(at(1000)).await.unwrap()),
        [w20.id, w50.id, w80.id]
    );
    store.wake(w20.id).await.unwrap();
    assert_eq!(store.next_wake().await.unwrap(), Some(at(50)));
    assert!(store
        .finish_run(w50.id, RunState::Cancelled, None, at(51))
        .await
        .unwrap());
    assert!(store
        .finish_run(w80.id, RunState::Cancelled, None, at(51))
        .await
        .unwrap());
    assert_eq!(store.next_wake().await.unwrap(), None);
    assert!(store.due_waits(at(1000)).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn open_approvals_come_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let a = create_at(&store, "wipe", None, t0()).await;
    let b = create_at(&store, "wipe", None, t0()).await;
    let ask = |run: RunId, step: u32, requested: DateTime<Utc>| NewApproval {
        run_id: run,
        step_index: step,
        step_id: format!("s{step}"),
        risk: RiskLevel::Critical,
        requested,
        expires: requested + TimeDelta::hours(24),
    };
    store.request_approval(&ask(a.id, 0, at(30))).await.unwrap();
    store.request_approval(&ask(b.id, 0, at(10))).await.unwrap();
    store.request_approval(&ask(a.id, 1, at(20))).await.unwrap();
    store
        .decide_approval(
            a.id,
            1,
            Decision {
                decision: ApprovalDecision::Expired,
                role: None,
                reason: None,
            },
            at(40),
        )
        .await
        .unwrap();
    let open = store.open_approvals().await.unwrap();
    assert_eq!(
        open.iter()
            .map(|x| (x.run_id, x.step_index, x.requested))
            .collect::<Vec<_>>(),
        [(b.id, 0, at(10)), (a.id, 0, at(30))]
    );
    assert!(open.iter().all(|x| x.decision.is_none()));
    store.close().await;
}

#[tokio::test]
async fn a_group_in_progress_is_its_running_and_waiting_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let api_running = running(&store, "deploy", Some("api")).await;
    let api_waiting = waiting(&store, "deploy", Some("api"), at(60)).await;
    let keyless = running(&store, "deploy", None).await;
    waiting(&store, "deploy", Some("db"), at(60)).await;
    running(&store, "backup", Some("api")).await;
    let ended = running(&store, "deploy", Some("api")).await;
    assert!(store
        .finish_run(ended.id, RunState::Succeeded, None, at(2))
        .await
        .unwrap());
    create_at(&store, "deploy", Some("api"), at(3)).await;

    assert_eq!(
        ids(&store.in_progress("deploy", Some("api")).await.unwrap()),
        [api_running.id, api_waiting.id]
    );
    assert_eq!(
        store
            .group_in_progress("deploy", Some("api"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        ids(&store.in_progress("deploy", None).await.unwrap()),
        [keyless.id],
        "None is the group of the runs without a key"
    );
    assert_eq!(store.group_in_progress("deploy", None).await.unwrap(), 1);
    assert_eq!(
        store.group_in_progress("deploy", Some("db")).await.unwrap(),
        1
    );
    assert_eq!(
        store
            .group_in_progress("deploy", Some("web"))
            .await
            .unwrap(),
        0
    );
    assert!(store.in_progress("nothing", None).await.unwrap().is_empty());
    store.close().await;
}

async fn count_of(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn retention_deletes_old_finished_runs_with_their_attempts_and_approvals_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let cut = at(10 * 86_400);
    let old = at(86_400);

    // Kept: runs in progress, however old, with their attempts and approvals.
    let old_running = running(&store, "deploy", Some("a")).await;
    store
        .start_attempt(old_running.id, 0, "a", at(2))
        .await
        .unwrap();
    let old_waiting = waiting(&store, "deploy", Some("b"), at(60)).await;
    store
        .request_approval(&NewApproval {
            run_id: old_waiting.id,
            step_index: 0,
            step_id: "ask".into(),
            risk: RiskLevel::High,
            requested: at(3),
            expires: at(99),
        })
        .await
        .unwrap();

    // Deleted: an old finished run with an attempt and a decided approval.
    let gone = running(&store, "deploy", Some("c")).await;
    let attempt = store.start_attempt(gone.id, 0, "a", at(2)).await.unwrap();
    store
        .finish_attempt(
            attempt.id,
            AttemptEnd {
                state: AttemptState::Failed,
                output: Some(&json!({"status": 503})),
                error: Some("503"),
            },
            at(3),
        )
        .await
        .unwrap();
    store
        .request_approval(&NewApproval {
            run_id: gone.id,
            step_index: 1,
            step_id: "ask".into(),
            risk: RiskLevel::High,
            requested: at(4),
            expires: at(99),
        })
        .await
        .unwrap();
    assert!(store
        .finish_run(gone.id, RunState::Failed, None, old)
        .await
        .unwrap());
    // Deleted too: an old finished run that a newer (kept) run retries; the newer run loses the link only.
    let retried = finished(&store, "deploy", RunState::Failed, old).await;
    let mut retry = new_run("deploy", None, 100);
    retry.retry_of = Some(retried.id);
    let retry = create(&store, &retry).await;
    assert!(store
        .finish_run(
            retry.id,
            RunState::Succeeded,
            None,
            cut + TimeDelta::hours(1)
        )
        .await
        .unwrap());
    // Kept: a run that finished at the cut (not before it), and a queued one.
    let at_cut = finished(&store, "deploy", RunState::Succeeded, cut).await;
    let queued = create_at(&store, "deploy", None, t0()).await;

    // More old finished runs than one chunk, each with an attempt, written directly.
    sqlx::query(
        "WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k < 1199)
         INSERT INTO workflow_runs (workflow, definition, inputs, reason, state, concurrency_limit, deadline_ms,
             created_ms, started_ms, finished_ms)
         SELECT 'bulk', '{}', '{}', 'test', 'succeeded', 1, ?1, ?1, ?1, ?1 + k FROM i",
    )
    .bind(to_ms(old))
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO workflow_attempts (run_id, step_index, step_id, attempt, state, started_ms, finished_ms)
         SELECT id, 0, 'a', 1, 'succeeded', created_ms, finished_ms FROM workflow_runs WHERE workflow = 'bulk'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(
        count_of(&store, "SELECT count(*) FROM workflow_runs").await,
        1207
    );

    let pruned = store.prune(cut, cut).await.unwrap();
    assert_eq!(pruned.workflow_runs, 1202);
    let mut kept: Vec<RunId> = sqlx::query_scalar("SELECT id FROM workflow_runs ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    kept.sort_unstable();
    assert_eq!(
        kept,
        [
            old_running.id,
            old_waiting.id,
            retry.id,
            at_cut.id,
            queued.id
        ]
    );
    assert_eq!(store.run(retry.id).await.unwrap().unwrap().retry_of, None);
    assert_eq!(
        count_of(&store, "SELECT count(*) FROM workflow_attempts").await,
        1,
        "the running run's attempt only"
    );
    assert_eq!(
        count_of(&store, "SELECT count(*) FROM workflow_approvals").await,
        1,
        "the waiting run's approval only"
    );
    assert_eq!(
        count_of(&store, "SELECT count(*) FROM pragma_foreign_key_check").await,
        0
    );
    // Nothing left to prune.
    assert_eq!(store.prune(cut, cut).await.unwrap().workflow_runs, 0);
    store.close().await;
}
