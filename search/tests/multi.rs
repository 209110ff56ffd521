//! Several objectives and constraints: the multi-objective samplers in the
//! suite's style (bounds, determinism, no duplicates in flight, categorical
//! coverage), constraint handling of every sampler, and the Pareto utilities.

use std::collections::{BTreeSet, HashSet};

use kale_search::katib::{AlgorithmSetting, sampler_from_katib};
use kale_search::pareto::{constrained_ranks, pareto_front, trials_hypervolume};
use kale_search::sampler::multi_auto::multi_objective_sampler;
use kale_search::study::StudyError;
use kale_search::{
    Direction, ParamValue, ParameterSpec, Params, Sampler, SearchSpace, Study, Trial,
};

const MULTI: [&str; 5] = ["nsga2", "nsga2:crossover=sbx", "motpe", "auto", "random"];
const MIN2: [Direction; 2] = [Direction::Minimize, Direction::Minimize];

/// `name:key=value:...`; small populations so generations turn over in a test.
fn multi_sampler(spec: &str, seed: u64) -> Box<dyn Sampler> {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap();
    let mut settings = vec![AlgorithmSetting::new("random_state", seed)];
    if name == "nsga2" {
        settings.push(AlgorithmSetting::new("population_size", 8));
    }
    if name == "auto" {
        settings.push(AlgorithmSetting::new("max_trials", 40));
    }
    for kv in parts {
        let (k, v) = kv.split_once('=').unwrap();
        settings.push(AlgorithmSetting::new(k, v));
    }
    multi_objective_sampler(name, &settings).unwrap()
}

fn mixed_space() -> SearchSpace {
    SearchSpace::new(vec![
        ParameterSpec::double("lr_step", 0.01, 0.1).with_step(0.01),
        ParameterSpec::int("layers", 1, 6),
        ParameterSpec::int("units", 8, 512).with_step(8.0).log(),
        ParameterSpec::categorical("act", &["relu", "tanh", "gelu"]),
        ParameterSpec::discrete("bs", &[16.0, 32.0, 64.0]),
        ParameterSpec::double("wd", 1e-6, 1e-1).log(),
        ParameterSpec::double("mom", 0.5, 0.99),
    ])
    .unwrap()
}

/// Two conflicting objectives over any parameters.
fn objectives(p: &Params) -> [f64; 2] {
    let s: f64 = p
        .values()
        .map(|v| match v {
            ParamValue::Categorical(s) => s.len() as f64 / 4.0,
            v => v.as_f64().unwrap().abs().ln_1p(),
        })
        .sum();
    let mom = p["mom"].as_f64().unwrap();
    [s + mom, s + (1.0 - mom) * 3.0]
}

fn run_multi(spec: &str, seed: u64, n: usize) -> Vec<Params> {
    let space = mixed_space();
    let mut study = Study::multi(space, multi_sampler(spec, seed), MIN2.to_vec());
    let mut out = Vec::new();
    for _ in 0..n {
        let (id, p) = study.ask().unwrap().unwrap();
        study.tell_values(id, &objectives(&p)).unwrap();
        out.push(p);
    }
    out
}

#[test]
fn multi_objective_suggestions_are_feasible() {
    let space = mixed_space();
    for spec in MULTI {
        for p in run_multi(spec, 3, 40) {
            space
                .check(&p)
                .unwrap_or_else(|e| panic!("{spec}: {e} in {p:?}"));
            let lr = p["lr_step"].as_f64().unwrap();
            assert_eq!(lr, (lr * 100.0).round() / 100.0, "{spec}: {lr}");
            assert_eq!(p["units"].as_i64().unwrap() % 8, 0, "{spec}");
        }
    }
}

#[test]
fn multi_objective_same_seed_same_suggestions() {
    for spec in MULTI {
        assert_eq!(run_multi(spec, 11, 30), run_multi(spec, 11, 30), "{spec}");
        assert_ne!(
            run_multi(spec, 11, 30),
            run_multi(spec, 12, 30),
            "{spec}: seed ignored"
        );
    }
}

#[test]
fn multi_objective_categories_are_all_visited() {
    for spec in MULTI {
        let seen: BTreeSet<String> = run_multi(spec, 5, 12)
            .iter()
            .map(|p| p["act"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(seen.len(), 3, "{spec}: {seen:?}");
    }
}

/// 24 points; after 12 completed trials, 10 asks in a row with every earlier
/// suggestion still running must all be new points.
#[test]
fn no_duplicate_suggestions_in_flight() {
    let space = SearchSpace::new(vec![
        ParameterSpec::int("depth", 1, 4),
        ParameterSpec::categorical("act", &["relu", "tanh", "gelu"]),
        ParameterSpec::discrete("bs", &[16.0, 32.0]),
    ])
    .unwrap();
    for spec in ["nsga2", "motpe", "auto", "nsga2:crossover=sbx"] {
        let mut s = multi_sampler(spec, 7);
        let mut trials: Vec<Trial> = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..22u64 {
            let p = s
                .ask_multi(&space, &trials, &MIN2)
                .unwrap()
                .params()
                .unwrap();
            assert!(
                seen.insert(format!("{p:?}")),
                "{spec}: trial {i} repeats {p:?}"
            );
            if i < 12 {
                let d = p["depth"].as_f64().unwrap();
                trials.push(Trial::complete_multi(i, p, vec![d, 5.0 - d]));
            } else {
                trials.push(Trial::running(i, p));
            }
        }
    }
}

#[test]
fn single_objective_samplers_refuse_several_objectives() {
    let space = mixed_space();
    let mut gp = sampler_from_katib("bayesianoptimization", &[]).unwrap();
    let err = gp.ask_multi(&space, &[], &MIN2).unwrap_err();
    assert!(err.to_string().contains("one objective"), "{err}");
    // ... and every multi-objective one also serves a single objective.
    for spec in MULTI {
        let mut s = multi_sampler(spec, 1);
        assert!(
            s.ask(&space, &[], Direction::Maximize)
                .unwrap()
                .params()
                .is_some()
        );
    }
}

/// Minimise (x − 0.9)² + (y − 0.5)² subject to x ≤ 0.5: the unconstrained
/// optimum is infeasible; the constrained one is (0.5, 0.5), value 0.16.
/// `aware`: the constraint values are told (else only the objective is).
fn constrained_study(name: &str, seed: u64, n: usize, aware: bool) -> Study {
    let space = SearchSpace::new(vec![
        ParameterSpec::double("x", 0.0, 1.0),
        ParameterSpec::double("y", 0.0, 1.0),
    ])
    .unwrap();
    let mut settings = vec![AlgorithmSetting::new("random_state", seed)];
    if name == "auto" {
        settings.push(AlgorithmSetting::new("max_trials", n));
    }
    let sampler = sampler_from_katib(name, &settings).unwrap();
    let mut study = Study::new(space, sampler, Direction::Minimize);
    for _ in 0..n {
        let (id, p) = study.ask().unwrap().unwrap();
        let (x, y) = (p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
        let v = (x - 0.9).powi(2) + (y - 0.5).powi(2);
        let c = if aware { vec![x - 0.5] } else { Vec::new() };
        study.tell_constrained(id, &[v], c).unwrap();
    }
    study
}

#[test]
fn constrained_single_objective_ends_with_a_feasible_best() {
    for (name, n) in [
        ("random", 60),
        ("tpe", 60),
        ("bayesianoptimization", 25),
        ("auto", 25),
    ] {
        let study = constrained_study(name, 2, n, true);
        let best = study.best_trial().unwrap();
        assert!(best.is_feasible(), "{name}: {best:?}");
        let v = best.value.unwrap();
        assert!(v >= 0.16 - 1e-9, "{name}: {v}");
        // Better infeasible trials exist (near x = 0.9), and are not returned.
        assert!(
            study
                .trials()
                .iter()
                .any(|t| !t.is_feasible() && t.value.unwrap() < v),
            "{name}: the constraint never mattered"
        );
        if name != "random" {
            assert!(v < 0.2, "{name}: best feasible {v}");
            // Model-based samplers learn where the feasible region is: in the
            // second half of the trials, clearly more are feasible than when
            // the constraint is not told (then they head for x = 0.9).
            let late_feasible = |s: &Study| {
                s.trials()[n / 2..]
                    .iter()
                    .filter(|t| t.params["x"].as_f64().unwrap() <= 0.5)
                    .count()
            };
            let (aware, blind) = (
                late_feasible(&study),
                late_feasible(&constrained_study(name, 2, n, false)),
            );
            assert!(
                aware >= blind + n / 8,
                "{name}: {aware} vs {blind} of {}",
                n - n / 2
            );
        }
    }
}

#[test]
fn constrained_multi_objective_front_is_feasible() {
    // Objectives x² and (x − 1)², constraint x ≥ 0.3.
    for spec in ["nsga2", "motpe", "random"] {
        let space = SearchSpace::new(vec![
            ParameterSpec::double("x", 0.0, 1.0),
            ParameterSpec::categorical("c", &["a", "b"]),
        ])
        .unwrap();
        let mut study = Study::multi(space, multi_sampler(spec, 4), MIN2.to_vec());
        for _ in 0..40 {
            let (id, p) = study.ask().unwrap().unwrap();
            let x = p["x"].as_f64().unwrap();
            let pen = if p["c"].as_str() == Some("b") {
                0.1
            } else {
                0.0
            };
            study
                .tell_constrained(id, &[x * x + pen, (x - 1.0).powi(2) + pen], vec![0.3 - x])
                .unwrap();
        }
        let front = study.best_trials();
        assert!(front.len() >= 3, "{spec}: {front:?}");
        for t in &front {
            assert!(t.params["x"].as_f64().unwrap() >= 0.3, "{spec}: {t:?}");
            assert_eq!(
                t.params["c"].as_str(),
                Some("a"),
                "{spec}: dominated level on the front"
            );
        }
        assert!(
            study.best_trial().is_none(),
            "several objectives: no single best"
        );
        assert!(study.hypervolume(&[1.0, 1.0]) > 0.2, "{spec}");
    }
}

#[test]
fn study_checks_the_number_of_values() {
    let space = mixed_space();
    let mut study = Study::multi(space, multi_sampler("motpe", 1), MIN2.to_vec());
    let (id, _) = study.ask().unwrap().unwrap();
    assert_eq!(
        study.tell_values(id, &[1.0]),
        Err(StudyError::WrongNumberOfValues {
            number: id,
            expected: 2,
            got: 1
        })
    );
    study.tell_values(id, &[1.0, f64::NAN]).unwrap();
    assert_eq!(study.trials()[0].state, kale_search::TrialState::Failed);
}

#[test]
fn pareto_front_and_ranks_by_hand() {
    // accuracy (maximise), latency (minimise), constraint model_mb − 50 ≤ 0.
    let dirs = [Direction::Maximize, Direction::Minimize];
    let t = |n: u64, acc: f64, ms: f64, mb: f64| {
        Trial::complete_multi(n, Params::new(), vec![acc, ms]).with_constraints(vec![mb - 50.0])
    };
    let trials = vec![
        t(0, 0.90, 30.0, 10.0), // front
        t(1, 0.95, 80.0, 40.0), // front
        t(2, 0.85, 40.0, 20.0), // dominated by 0
        t(3, 0.99, 10.0, 70.0), // best values, but 20 MB too big
        t(4, 0.99, 10.0, 55.0), // 5 MB too big
        Trial::running(5, Params::new()),
        t(6, 0.90, 30.0, 0.0), // equal to 0: also on the front
    ];
    let front: Vec<u64> = pareto_front(&trials, &dirs)
        .iter()
        .map(|t| t.number)
        .collect();
    assert_eq!(front, vec![0, 1, 6]);
    assert_eq!(
        constrained_ranks(&trials, &dirs),
        vec![Some(0), Some(0), Some(1), Some(3), Some(2), None, Some(0)]
    );
    // Reference accuracy 0.8, latency 100: boxes 0.10 × 70 and 0.15 × 20,
    // overlapping in 0.10 × 20.
    let hv = trials_hypervolume(&trials, &dirs, &[0.8, 100.0]);
    assert!((hv - (7.0 + 3.0 - 2.0)).abs() < 1e-9, "{hv}");
}

/// MOTPE and NSGA-II find a better front than random search on a 2-objective
/// problem of 4 variables (fixed seeds: deterministic).
#[test]
fn model_based_fronts_beat_random() {
    let space = SearchSpace::new(
        (0..4)
            .map(|i| ParameterSpec::double(format!("x{i}"), 0.0, 1.0))
            .collect(),
    )
    .unwrap();
    let hv = |spec: &str, seed: u64| {
        let mut study = Study::multi(space.clone(), multi_sampler(spec, seed), MIN2.to_vec());
        for _ in 0..80 {
            let (id, p) = study.ask().unwrap().unwrap();
            let x: Vec<f64> = (0..4)
                .map(|i| p[&format!("x{i}")].as_f64().unwrap())
                .collect();
            let g = 1.0 + 3.0 * (x[1] + x[2] + x[3]);
            study
                .tell_values(id, &[x[0], g * (1.0 - (x[0] / g).sqrt())])
                .unwrap();
        }
        study.hypervolume(&[1.1, 5.0])
    };
    for seed in 0..3 {
        let r = hv("random", seed);
        assert!(hv("motpe", seed) > r, "seed {seed}");
        assert!(hv("nsga2", seed) > r, "seed {seed}");
    }
}
