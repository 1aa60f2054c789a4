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
