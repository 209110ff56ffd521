//! The tune loop's decisions without Python: the session is given the events a
//! trial's run would send (its reports, its end), and nothing is launched unless the
//! end conditions allow it.

use std::collections::BTreeMap;

use kale_search::{ParamValue, Params};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::*;

const NOTEBOOK: &str = r#"{
 "cells": [
  {"cell_type": "code", "execution_count": null, "metadata": {"tags": ["pipeline-parameters"]}, "outputs": [], "source": ["n = 1\n"]},
  {"cell_type": "code", "execution_count": null, "metadata": {"tags": ["block:train"]}, "outputs": [], "source": ["acc = n / 10\n"]},
  {"cell_type": "code", "execution_count": null, "metadata": {"tags": ["pipeline-metrics"]}, "outputs": [], "source": ["print(acc)\n"]}
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}"#;

/// A notebook, its store and a recorded experiment searching `n` in 1..3 for `acc`.
struct Fixture {
    _dir: tempfile::TempDir,
    pipeline: Pipeline,
    store: Store,
    experiment: Experiment,
    search: ResolvedSearch,
    opts: TuneOptions,
}

fn fixture(args: SearchArgs) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let notebook = dir.path().join("nb.ipynb");
    std::fs::write(&notebook, NOTEBOOK).unwrap();
    let pipeline = crate::pipeline::load(&notebook)
        .0
        .expect("the notebook loads");
    let args = SearchArgs {
        objectives: vec!["acc".into()],
        params: vec!["n=int:1..3".into()],
        algorithm: Some("grid".into()),
        ..args
    };
    let resolved = plan::resolve(&pipeline, &args).unwrap_or_else(|e| panic!("{e:?}"));
    let store_path = dir.path().join("kale.db");
    let store = Store::open(&store_path).unwrap();
    let (experiment, search) = prepare(
        &pipeline,
        "h",
        &store,
        "exp",
        false,
        Some(resolved),
        None,
        None,
    )
    .unwrap();
    let opts = TuneOptions {
        name: "exp".into(),
        resume: false,
        search: search.clone(),
        interpreter: exec::Interpreter {
            executable: "python3".into(),
            version: (3, 12),
            full_version: "3.12.0".into(),
            has_ipython: false,
        },
        runs_dir: dir.path().join("runs"),
        store_path,
        cache: None,
        reuse: true,
        jobs_per_trial: 1,
        trial_timeout: None,
        resources: None,
    };
    Fixture {
        _dir: dir,
        pipeline,
        store,
        experiment,
        search,
        opts,
    }
}

struct Silent;
impl TuneReporter for Silent {}

impl Fixture {
    fn session(&self) -> Session<'_> {
        Session::open(
            &self.store,
            &self.pipeline,
            &self.experiment,
            &self.search,
            &self.opts,
            Arc::new(Silent),
        )
        .unwrap()
    }
}

/// Records trial `number` as running with `params`, as `Session::launch` does, but
/// with no run behind it; the receiver sees the trial's cancellation.
fn start(s: &mut Session<'_>, number: i64, params: Params) -> watch::Receiver<bool> {
    let row = s.log.start(number, &params, "runs/none").unwrap();
    s.rows.push(row);
    s.next_number = number + 1;
    let (running, cancelled) = Running::without_run(params);
    s.running.insert(number, running);
    cancelled
}

fn n(v: i64) -> Params {
    BTreeMap::from([("n".to_string(), ParamValue::Int(v))])
}

fn finished_with_error(number: i64) -> Event {
    Event::Finished {
        number,
        run: Box::new(Err(std::io::Error::other("the run could not start"))),
        timed_out: false,
    }
}

#[test]
fn trials_in_flight_are_not_suggested_again_and_the_space_runs_out() {
    let f = fixture(SearchArgs::default());
    let mut s = f.session();
    let mut seen = Vec::new();
    for number in 0..3 {
        let params = s.ask().unwrap().expect("a point is left");
        assert!(!seen.contains(&params), "{params:?} suggested twice");
        seen.push(params.clone());
        start(&mut s, number, params);
    }
    assert_eq!(s.ask().unwrap(), None, "grid has three points");
}

#[test]
fn a_failed_run_is_recorded_and_past_max_failed_nothing_more_starts() {
    let f = fixture(SearchArgs {
        max_failed: Some(0),
        ..SearchArgs::default()
    });
    let mut s = f.session();
    start(&mut s, 0, n(1));
    assert!(s.on_event(finished_with_error(0)).is_ok());
    assert!(s.running.is_empty());
    assert_eq!(s.rows[0].status, TrialStatus::Failed);
    assert_eq!(s.history.len(), 1, "the sampler hears of the failure");

    let (tx, _rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    s.start_trials(&mut tasks, &tx).unwrap();
    assert!(tasks.is_empty(), "no trial launched");
    assert_eq!(
        s.ended,
        Some((ExperimentStatus::Failed, "more than 0 trials failed".into()))
    );
    let outcome = s.finish().unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Failed);
    assert_eq!(outcome.reason, "more than 0 trials failed");
    assert_eq!(outcome.trials.len(), 1);
    assert_eq!(
        f.store.experiment("exp").unwrap().status,
        ExperimentStatus::Failed
    );
}

#[test]
fn the_budget_spent_ends_the_experiment_and_one_without_results_failed() {
    let f = fixture(SearchArgs {
        max_trials: Some(1),
        ..SearchArgs::default()
    });
    let mut s = f.session();
    start(&mut s, 0, n(2));
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    s.start_trials(&mut tasks, &tx).unwrap();
    assert!(tasks.is_empty(), "the one trial allowed is running");
    assert_eq!(s.ended, None);
    s.on_event(finished_with_error(0)).ok().unwrap();
    s.start_trials(&mut tasks, &tx).unwrap();
    assert!(tasks.is_empty());
    let outcome = s.finish().unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Failed);
    assert!(
        outcome
            .reason
            .starts_with("no trial succeeded; all 1 failed trials:"),
        "{}",
        outcome.reason
    );
}

#[test]
fn intermediate_reports_are_stored_and_the_stopping_rule_cancels_a_poor_trial() {
    let f = fixture(SearchArgs {
        early_stopping: Some("medianstop".into()),
        early_stopping_settings: vec!["min_trials_required=1".into(), "start_step=1".into()],
        ..SearchArgs::default()
    });
    let mut s = f.session();
    // A completed trial that reported 0.9 at its first step.
    let mut done = kale_search::Trial::complete(0, n(3), 0.9);
    done.intermediate_values = record::by_step(&[0.9]);
    s.history.push(done);

    let cancelled = start(&mut s, 1, n(1));
    s.on_event(Event::Intermediate {
        number: 1,
        value: 0.1,
    })
    .ok()
    .unwrap();
    assert!(s.running[&1].pruned);
    assert!(*cancelled.borrow(), "the run is asked to stop");
    assert_eq!(
        f.store.trial(f.experiment.id, 1).unwrap().intermediate,
        [0.1]
    );

    // A report for a trial that is no longer running changes nothing.
    s.on_event(Event::Intermediate {
        number: 9,
        value: 0.0,
    })
    .ok()
    .unwrap();
}

#[test]
fn a_trial_doing_well_is_not_stopped() {
    let f = fixture(SearchArgs {
        early_stopping: Some("medianstop".into()),
        early_stopping_settings: vec!["min_trials_required=1".into(), "start_step=1".into()],
        ..SearchArgs::default()
    });
    let mut s = f.session();
    let mut done = kale_search::Trial::complete(0, n(3), 0.5);
    done.intermediate_values = record::by_step(&[0.5]);
    s.history.push(done);
    let cancelled = start(&mut s, 1, n(2));
    s.on_event(Event::Intermediate {
        number: 1,
        value: 0.8,
    })
    .ok()
    .unwrap();
    assert!(!s.running[&1].pruned);
    assert!(!*cancelled.borrow());
}
