//! The DAG runner's decisions without Python: which steps may start, what a
//! finished step changes in the run's record, how the run ends.

use super::*;

/// `a`, then `b` and `c` (which read `x` from `a`), then `d` after both.
const NOTEBOOK: &str = r#"{
 "cells": [
  {"cell_type": "code", "execution_count": null, "metadata": {"tags": ["step:a"]}, "outputs": [], "source": ["x = 1\n"]},
  {"cell_type": "code", "execution_count": null, "metadata": {"tags": ["step:b", "prev:a"]}, "outputs": [], "source": ["y = x + 1\n"]},
  {"cell_type": "code", "execution_count": null, "metadata": {"tags": ["step:c", "prev:a"]}, "outputs": [], "source": ["z = x + 2\n"]},
  {"cell_type": "code", "execution_count": null, "metadata": {"tags": ["step:d", "prev:b", "prev:c"]}, "outputs": [], "source": ["w = y + z\n"]}
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}"#;

fn pipeline() -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let notebook = dir.path().join("nb.ipynb");
    std::fs::write(&notebook, NOTEBOOK).unwrap();
    let (p, diags) = crate::pipeline::load(&notebook);
    p.unwrap_or_else(|| panic!("{diags:?}"))
}

fn manifest(p: &Pipeline) -> Manifest {
    let opts = RunOptions {
        interpreter: Interpreter {
            executable: "python3".into(),
            version: (3, 12),
            full_version: "3.12.0".into(),
            has_ipython: false,
        },
        values: BTreeMap::new(),
        jobs: 4,
        runs_dir: "runs".into(),
        run_id: None,
        cache: None,
        reuse: true,
        experiment: None,
        fork_server: None,
        resources: None,
    };
    new_manifest(p, &opts, "r1")
}

fn ready(p: &Pipeline, m: &Manifest) -> Vec<String> {
    ready_steps(p, m).iter().map(|s| s.name.clone()).collect()
}

fn ended_as(m: &mut Manifest, step: &str, status: StepStatus) -> Ended {
    let mut record = m.step(step).unwrap().clone();
    record.status = status;
    record_finished(m, step.to_string(), record)
}

#[test]
fn a_step_starts_once_every_step_before_it_succeeded() {
    let p = pipeline();
    let mut m = manifest(&p);
    assert_eq!(m.run_id, "r1");
    assert!(m.steps.iter().all(|s| s.status == StepStatus::Pending));
    assert_eq!(ready(&p, &m), ["a"]);

    m.step_mut("a").status = StepStatus::Running;
    assert!(ready(&p, &m).is_empty(), "b and c wait for a");
    assert_eq!(ended_as(&mut m, "a", StepStatus::Cached), Ended::Other);
    assert_eq!(
        ready(&p, &m),
        ["b", "c"],
        "a step reused from the cache counts"
    );

    ended_as(&mut m, "b", StepStatus::Succeeded);
    m.step_mut("c").status = StepStatus::Running;
    assert!(ready(&p, &m).is_empty(), "d waits for c too");
    ended_as(&mut m, "c", StepStatus::Succeeded);
    assert_eq!(ready(&p, &m), ["d"]);
}

#[test]
fn a_failed_step_holds_back_what_follows_it_and_fails_the_run() {
    let p = pipeline();
    let mut m = manifest(&p);
    ended_as(&mut m, "a", StepStatus::Succeeded);
    match ended_as(&mut m, "b", StepStatus::Failed) {
        Ended::Failed(step, err) => {
            assert_eq!(step, "b");
            assert_eq!(
                err.message, "the step failed",
                "a generic error when none was recorded"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ready(&p, &m), ["c"], "d never becomes ready");
    close(&mut m, false, true);
    assert_eq!(m.status, RunStatus::Failed);
    assert_eq!(m.step("d").unwrap().status, StepStatus::NotRun);
    assert_eq!(m.step("c").unwrap().status, StepStatus::NotRun);
    assert!(m.finished_at.is_some());
}

#[test]
fn a_finished_steps_metrics_become_the_runs() {
    let p = pipeline();
    let mut m = manifest(&p);
    let mut record = m.step("a").unwrap().clone();
    record.status = StepStatus::Succeeded;
    record.metrics.insert("acc".into(), serde_json::json!(0.9));
    record_finished(&mut m, "a".into(), record);
    assert_eq!(m.metrics.get("acc"), Some(&serde_json::json!(0.9)));
    assert_eq!(m.step("a").unwrap().status, StepStatus::Succeeded);
}

#[test]
fn a_run_succeeds_only_when_every_step_did_and_an_interruption_wins() {
    let p = pipeline();
    let mut m = manifest(&p);
    for s in ["a", "b", "c", "d"] {
        ended_as(&mut m, s, StepStatus::Succeeded);
    }
    close(&mut m, false, false);
    assert_eq!(m.status, RunStatus::Succeeded);

    let mut m = manifest(&p);
    assert_eq!(
        ended_as(&mut m, "a", StepStatus::Interrupted),
        Ended::Interrupted
    );
    close(&mut m, true, false);
    assert_eq!(m.status, RunStatus::Interrupted);
    assert!(
        m.steps[1..].iter().all(|s| s.status == StepStatus::NotRun),
        "steps that never started did not run"
    );
}
