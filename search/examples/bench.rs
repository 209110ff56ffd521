//! Search-quality and overhead benchmark against the Optuna baseline.
//!
//! Same test functions, bounds and budgets as the Python harness
//! (`hpo-bench/functions.py`): simple regret after 50 and 100 trials over 20
//! seeds, and the wall time of one ask+tell at 100, 500 and 1000 trials.
//!
//! ```text
//! cargo run --release -p kale-search --example bench            # everything
//! cargo run --release -p kale-search --example bench -- quality tpe,random
//! cargo run --release -p kale-search --example bench -- overhead
//! ```

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::time::Instant;

use kale_search::katib::{AlgorithmSetting, sampler_from_katib};
use kale_search::{Direction, ParameterSpec, Params, SearchSpace, Study};

type Objective = fn(&Params) -> f64;

struct Problem {
    name: &'static str,
    f: Objective,
    space: Vec<ParameterSpec>,
    /// The same function on the grid the Python baseline used.
    grid_space: Vec<ParameterSpec>,
    f_opt: f64,
}

fn get(p: &Params, k: &str) -> f64 {
    p[k].as_f64().expect("numeric parameter")
}

fn branin(p: &Params) -> f64 {
    let (x1, x2) = (get(p, "x1"), get(p, "x2"));
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const H6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H6_P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];

fn hartmann6_at(x: &[f64; 6]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| H6_A[i][j] * (x[j] - 1e-4 * H6_P[i][j]).powi(2))
                .sum();
            H6_ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

fn hartmann6(p: &Params) -> f64 {
    let x: [f64; 6] = std::array::from_fn(|i| get(p, &format!("x{i}")));
    hartmann6_at(&x)
}

fn forrester_at(x: f64) -> f64 {
    (6.0 * x - 2.0).powi(2) * (12.0 * x - 4.0).sin()
}

fn forrester(p: &Params) -> f64 {
    forrester_at(get(p, "x"))
}

fn mixed(p: &Params) -> f64 {
    let (shift, offset) = match p["act"].as_str().expect("categorical") {
        "relu" => (1.0, 0.0),
        "tanh" => (-2.0, 0.3),
        "sigmoid" => (3.0, 0.6),
        _ => (0.0, 1.0),
    };
    (get(p, "x") - shift).powi(2) + offset + 0.05 * (get(p, "n") - 7.0).powi(2)
}

fn problems() -> Vec<Problem> {
    let h6_opt = hartmann6_at(&[
        0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054,
    ]);
    // As in functions.py: the minimum of a 200001-point grid.
    let forrester_opt = (0..=200_000)
        .map(|i| forrester_at(i as f64 / 200_000.0))
        .fold(f64::INFINITY, f64::min);
    let acts = ["relu", "tanh", "sigmoid", "linear"];
    vec![
        Problem {
            name: "branin2d",
            f: branin,
            space: vec![
                ParameterSpec::double("x1", -5.0, 10.0),
                ParameterSpec::double("x2", 0.0, 15.0),
            ],
            grid_space: vec![
                ParameterSpec::double("x1", -5.0, 10.0).with_step(15.0 / 9.0),
                ParameterSpec::double("x2", 0.0, 15.0).with_step(15.0 / 9.0),
            ],
            f_opt: branin(
                &[
                    ("x1".to_string(), kale_search::ParamValue::Double(PI)),
                    ("x2".to_string(), kale_search::ParamValue::Double(2.275)),
                ]
                .into_iter()
                .collect(),
            ),
        },
        Problem {
            name: "hartmann6d",
            f: hartmann6,
            space: (0..6)
                .map(|i| ParameterSpec::double(format!("x{i}"), 0.0, 1.0))
                .collect(),
            grid_space: (0..6)
                .map(|i| ParameterSpec::double(format!("x{i}"), 0.0, 1.0).with_step(0.5))
                .collect(),
            f_opt: h6_opt,
        },
        Problem {
            name: "forrester1d",
            f: forrester,
            space: vec![ParameterSpec::double("x", 0.0, 1.0)],
            grid_space: vec![ParameterSpec::double("x", 0.0, 1.0).with_step(1.0 / 99.0)],
            f_opt: forrester_opt,
        },
        Problem {
            name: "mixed_cat",
            f: mixed,
            space: vec![
                ParameterSpec::double("x", -5.0, 5.0),
                ParameterSpec::int("n", 1, 10),
                ParameterSpec::categorical("act", &acts),
            ],
            // functions.py rounds linspace(1, 10, 5) for n: 1, 3, 6, 8, 10.
            grid_space: vec![
                ParameterSpec::double("x", -5.0, 5.0).with_step(2.5),
                ParameterSpec::discrete("n", &[1.0, 3.0, 6.0, 8.0, 10.0]),
                ParameterSpec::categorical("act", &acts),
            ],
            f_opt: 0.0,
        },
    ]
}

fn make_study(problem: &Problem, sampler: &str, seed: u64) -> Study {
    let space = if sampler == "grid" {
        &problem.grid_space
    } else {
        &problem.space
    };
    let space = SearchSpace::new(space.clone()).expect("valid benchmark space");
    let algorithm = if sampler == "gp" {
        "bayesianoptimization"
    } else {
        sampler
    };
    let mut settings = vec![AlgorithmSetting::new("random_state", seed)];
    // Extra Katib settings for experiments, e.g. BENCH_SETTINGS="n_ei_candidates=48,gamma=0.15".
    if let Ok(extra) = std::env::var("BENCH_SETTINGS") {
        for kv in extra.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').expect("name=value");
            settings.push(AlgorithmSetting::new(k, v));
        }
    }
    let s = sampler_from_katib(algorithm, &settings).expect("known sampler and settings");
    Study::new(space, s, Direction::Minimize)
}

/// Quantile with linear interpolation (numpy's default), for comparable IQRs.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - frac) + sorted[i + 1] * frac
    } else {
        sorted[i]
    }
}

fn fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{} [{}, {}]",
        fmt(quantile(&v, 0.5)),
        fmt(quantile(&v, 0.25)),
        fmt(quantile(&v, 0.75))
    )
}

fn quality(samplers: &[&str], seeds: u64, trials: usize) {
    println!("## Simple regret (best found − f*), median [Q1, Q3] over {seeds} seeds\n");
    // BENCH_FUNCTIONS=hartmann6d,branin2d limits the run to those functions.
    let only = std::env::var("BENCH_FUNCTIONS").ok();
    for problem in problems().into_iter().filter(|p| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|f| f == p.name))
    }) {
        println!("### {} (f* = {:.6})\n", problem.name, problem.f_opt);
        println!("| sampler | seeds | regret @50 | regret @{trials} | s per run |");
        println!("|---|---|---|---|---|");
        for &sampler in samplers {
            let mut at50 = Vec::new();
            let mut at_end = Vec::new();
            let mut secs = 0.0;
            let mut found_cat = 0;
            let mut found_cat50 = 0;
            // BENCH_HISTORY=FILE writes every trial (value, then parameters by name), one run per line.
            let mut history = std::env::var("BENCH_HISTORY")
                .ok()
                .map(|f| std::fs::File::create(f).expect("history file"));
            // BENCH_FIRST_SEED moves the window, e.g. to check a change on seeds it was not tuned on.
            let first: u64 = std::env::var("BENCH_FIRST_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            for seed in first..first + seeds {
                let mut study = make_study(&problem, sampler, seed);
                let t0 = Instant::now();
                let mut best = f64::INFINITY;
                let mut rows: Vec<Vec<f64>> = Vec::new();
                for i in 0..trials {
                    let Some((id, p)) = study.ask().expect("sampler works on the space") else {
                        break;
                    };
                    let v = (problem.f)(&p);
                    if history.is_some() {
                        let mut row = vec![v];
                        row.extend(p.values().map(|x| x.as_f64().unwrap_or(f64::NAN)));
                        rows.push(row);
                    }
                    study.tell(id, v).expect("running trial");
                    best = best.min(v);
                    if i + 1 == 50 {
                        at50.push((best - problem.f_opt).max(0.0));
                        found_cat50 += (best - problem.f_opt < 0.3) as usize;
                    }
                }
                secs += t0.elapsed().as_secs_f64();
                if let Some(out) = history.as_mut() {
                    use std::io::Write;
                    writeln!(out, "{}", serde_json::to_string(&rows).expect("numbers"))
                        .expect("history file");
                }
                let regret = (best - problem.f_opt).max(0.0);
                if std::env::var_os("BENCH_PER_SEED").is_some() {
                    let at = study.best_trial().map(|t| {
                        t.params
                            .iter()
                            .map(|(k, v)| format!("{k}={:.3}", v.as_f64().unwrap_or(f64::NAN)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    });
                    eprintln!(
                        "  {} {sampler} seed {seed}: regret {} at {}",
                        problem.name,
                        fmt(regret),
                        at.unwrap_or_default()
                    );
                }
                at_end.push(regret);
                found_cat += (regret < 0.3) as usize;
            }
            println!(
                "| {sampler} | {seeds} | {} | {} | {:.2} |",
                summary(at50),
                summary(at_end),
                secs / seeds as f64
            );
            if problem.name == "mixed_cat" {
                eprintln!(
                    "  {sampler}: runs that found the best category (regret < 0.3) @50: {found_cat50}/{seeds}, @{trials}: {found_cat}/{seeds}"
                );
            }
        }
        println!();
    }
}

fn overhead(samplers: &[&str]) {
    println!("## One ask+tell, ms (median of trials n−9..n, median over 3 repeats)\n");
    println!("| space | sampler | n=100 | n=500 | n=1000 |");
    println!("|---|---|---|---|---|");
    for problem in problems()
        .into_iter()
        .filter(|p| p.name == "branin2d" || p.name == "hartmann6d")
    {
        for &sampler in samplers {
            let max_n = if sampler == "gp" { 100 } else { 1000 };
            let mut per_n: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for rep in 0..3 {
                let mut study = make_study(&problem, sampler, rep);
                let mut times = Vec::with_capacity(max_n);
                for _ in 0..max_n {
                    let t0 = Instant::now();
                    let (id, p) = study.ask().unwrap().unwrap();
                    let v = (problem.f)(&p);
                    study.tell(id, v).unwrap();
                    times.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                for n in [100, 500, 1000] {
                    if n <= max_n {
                        let mut w = times[n - 10..n].to_vec();
                        w.sort_by(f64::total_cmp);
                        per_n.entry(n).or_default().push(quantile(&w, 0.5));
                    }
                }
            }
            let cell = |n: usize| {
                per_n.get(&n).map_or("-".to_string(), |v| {
                    let mut v = v.clone();
                    v.sort_by(f64::total_cmp);
                    format!("{:.3}", quantile(&v, 0.5))
                })
            };
            println!(
                "| {} | {sampler} | {} | {} | {} |",
                problem.name,
                cell(100),
                cell(500),
                cell(1000)
            );
        }
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("all", String::as_str);
    let samplers: Vec<&str> = args
        .get(1)
        .map_or(vec!["random", "grid", "tpe", "gp"], |s| {
            s.split(',').collect()
        });
    let seeds = std::env::var("BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let trials = std::env::var("BENCH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    if mode == "quality" || mode == "all" {
        quality(&samplers, seeds, trials);
    }
    if mode == "overhead" || mode == "all" {
        let timed: Vec<&str> = samplers.iter().copied().filter(|s| *s != "grid").collect();
        overhead(&timed);
    }
}
