//! Multi-objective benchmark: hypervolume on ZDT1, ZDT2, ZDT3 (2 objectives,
//! 10 variables) and DTLZ2 (3 objectives, 12 variables) after 50, 100 and 200
//! trials, for our samplers and, read from `search/bench/optuna_mo.py`'s
//! output, Optuna 5.0's.
//!
//! ```text
//! nice .venv/bin/python search/bench/optuna_mo.py --seeds 20 --trials 200 --out target/mo_optuna.json
//! MO_OPTUNA=target/mo_optuna.json nice cargo run --release -p kale-search --example mo_bench
//! ```
//!
//! Knobs: `MO_SEEDS` (20), `MO_FIRST_SEED` (0), `MO_TRIALS` (200),
//! `MO_BUDGETS` (50,100,200), `MO_PROBLEMS` (zdt1,zdt2,zdt3,dtlz2),
//! `MO_SAMPLERS` (nsga2,motpe,random; `name:key=value:key=value` passes
//! settings, e.g. `nsga2:crossover=sbx`), `MO_THREADS` (2), `MO_OPTUNA`
//! (comma list of JSON-lines files from the driver).
//!
//! Reported: the hypervolume regret `HV* − HV`, where `HV*` is the hypervolume
//! of the true Pareto front against the same reference point, median [Q1, Q3]
//! over seeds (smaller is better; 0 would be the whole front found). Reference
//! points: (1.1, 11) for the ZDT problems, (2.5, 2.5, 2.5) for DTLZ2 — worse
//! than nearly every point a search meets, so early progress counts too.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::sync::Mutex;
use std::time::Instant;

use kale_search::katib::AlgorithmSetting;
use kale_search::pareto::hypervolume;
use kale_search::sampler::multi_auto::multi_objective_sampler;
use kale_search::{Direction, ParameterSpec, SearchSpace, Study};

struct Problem {
    name: &'static str,
    n_vars: usize,
    n_obj: usize,
    f: fn(&[f64]) -> Vec<f64>,
    reference: Vec<f64>,
    /// Hypervolume of the true front against `reference`.
    hv_star: f64,
}

fn zdt_g(x: &[f64]) -> f64 {
    1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64
}

fn zdt1(x: &[f64]) -> Vec<f64> {
    let g = zdt_g(x);
    vec![x[0], g * (1.0 - (x[0] / g).sqrt())]
}

fn zdt2(x: &[f64]) -> Vec<f64> {
    let g = zdt_g(x);
    vec![x[0], g * (1.0 - (x[0] / g).powi(2))]
}

fn zdt3(x: &[f64]) -> Vec<f64> {
    let g = zdt_g(x);
    let h = 1.0 - (x[0] / g).sqrt() - (x[0] / g) * (10.0 * PI * x[0]).sin();
    vec![x[0], g * h]
}

fn dtlz2(x: &[f64]) -> Vec<f64> {
    let g: f64 = x[2..].iter().map(|v| (v - 0.5).powi(2)).sum();
    let (a, b) = (x[0] * PI / 2.0, x[1] * PI / 2.0);
    vec![
        (1.0 + g) * a.cos() * b.cos(),
        (1.0 + g) * a.cos() * b.sin(),
        (1.0 + g) * a.sin(),
    ]
}

/// HV of a 2-objective ZDT front (g = 1): a dense sample of the front; the
/// sweep is exact for the sample, which is within 1e-5 of the curve's.
fn zdt_front_hv(f: fn(&[f64]) -> Vec<f64>, n: usize, reference: &[f64]) -> f64 {
    let pts: Vec<Vec<f64>> = (0..=200_000)
        .map(|i| {
            let mut x = vec![0.0; n];
            x[0] = i as f64 / 200_000.0;
            f(&x)
        })
        .collect();
    hypervolume(&pts, reference)
}

fn problems() -> Vec<Problem> {
    let zr = vec![1.1, 11.0];
    let dr = vec![2.5, 2.5, 2.5];
    vec![
        Problem {
            name: "zdt1",
            n_vars: 10,
            n_obj: 2,
            f: zdt1,
            hv_star: zdt_front_hv(zdt1, 10, &zr),
            reference: zr.clone(),
        },
        Problem {
            name: "zdt2",
            n_vars: 10,
            n_obj: 2,
            f: zdt2,
            hv_star: zdt_front_hv(zdt2, 10, &zr),
            reference: zr.clone(),
        },
        Problem {
            name: "zdt3",
            n_vars: 10,
            n_obj: 2,
            f: zdt3,
            hv_star: zdt_front_hv(zdt3, 10, &zr),
            reference: zr.clone(),
        },
        Problem {
            name: "dtlz2",
            n_vars: 12,
            n_obj: 3,
            f: dtlz2,
            // The front is the unit sphere's positive octant: everything in
            // the reference box outside the ball is dominated.
            hv_star: dr.iter().product::<f64>() - PI / 6.0,
            reference: dr,
        },
    ]
}

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn env_list(k: &str, d: &str) -> Vec<String> {
    std::env::var(k)
        .unwrap_or_else(|_| d.to_string())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// One run: the objective values of every trial.
fn run(p: &Problem, spec: &str, seed: u64, trials: usize) -> Vec<Vec<f64>> {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap();
    let mut settings = vec![AlgorithmSetting::new("random_state", seed)];
    for kv in parts {
        let (k, v) = kv.split_once('=').expect("settings as key=value");
        settings.push(AlgorithmSetting::new(k, v));
    }
    if name == "auto" {
        settings.push(AlgorithmSetting::new("max_trials", trials));
    }
    let sampler = multi_objective_sampler(name, &settings).unwrap();
    let space = SearchSpace::new(
        (0..p.n_vars)
            .map(|i| ParameterSpec::double(format!("x{i}"), 0.0, 1.0))
            .collect(),
    )
    .unwrap();
    let mut study = Study::multi(space, sampler, vec![Direction::Minimize; p.n_obj]);
    let mut out = Vec::with_capacity(trials);
    for _ in 0..trials {
        let (id, params) = study.ask().unwrap().expect("never exhausted");
        let x: Vec<f64> = (0..p.n_vars)
            .map(|i| params[&format!("x{i}")].as_f64().unwrap())
            .collect();
        let v = (p.f)(&x);
        study.tell_values(id, &v).unwrap();
        out.push(v);
    }
    out
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let x = p * (v.len() - 1) as f64;
        let (i, f) = (x.floor() as usize, x.fract());
        if i + 1 < v.len() {
            v[i] * (1.0 - f) + v[i + 1] * f
        } else {
            v[i]
        }
    };
    (q(0.5), q(0.25), q(0.75))
}

fn fmt(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// (problem, sampler) → per seed: (HV regret at each budget, seconds).
type Results = BTreeMap<(String, String), Vec<(u64, Vec<f64>, f64)>>;

fn regrets(p: &Problem, values: &[Vec<f64>], budgets: &[usize]) -> Vec<f64> {
    budgets
        .iter()
        .map(|&b| p.hv_star - hypervolume(&values[..b.min(values.len())], &p.reference))
        .collect()
}

fn main() {
    let seeds: u64 = env("MO_SEEDS", 20);
    let first: u64 = env("MO_FIRST_SEED", 0);
    let trials: usize = env("MO_TRIALS", 200);
    let budgets: Vec<usize> = env_list("MO_BUDGETS", "50,100,200")
        .iter()
        .map(|b| b.parse().unwrap())
        .filter(|&b| b <= trials)
        .collect();
    let wanted = env_list("MO_PROBLEMS", "zdt1,zdt2,zdt3,dtlz2");
    let samplers = env_list("MO_SAMPLERS", "nsga2,motpe,random");
    let threads: usize = env("MO_THREADS", 2);
    let probs: Vec<Problem> = problems()
        .into_iter()
        .filter(|p| wanted.iter().any(|w| w == p.name))
        .collect();

    let results: Mutex<Results> = Mutex::new(BTreeMap::new());
    let jobs: Vec<(usize, String, u64)> = probs
        .iter()
        .enumerate()
        .flat_map(|(pi, _)| {
            samplers
                .iter()
                .flat_map(move |s| (first..first + seeds).map(move |seed| (pi, s.clone(), seed)))
        })
        .collect();
    let next = Mutex::new(0usize);
    std::thread::scope(|sc| {
        for _ in 0..threads.max(1) {
            sc.spawn(|| {
                loop {
                    let j = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some((pi, s, seed)) = jobs.get(j) else {
                        break;
                    };
                    let p = &probs[*pi];
                    let t0 = Instant::now();
                    let values = run(p, s, *seed, trials);
                    let secs = t0.elapsed().as_secs_f64();
                    let r = regrets(p, &values, &budgets);
                    results
                        .lock()
                        .unwrap()
                        .entry((p.name.to_string(), s.clone()))
                        .or_default()
                        .push((*seed, r, secs));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();

    for file in env_list("MO_OPTUNA", "") {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let name = v["problem"].as_str().unwrap();
            let seed = v["seed"].as_u64().unwrap();
            let Some(p) = probs.iter().find(|p| p.name == name) else {
                continue;
            };
            if seed < first || seed >= first + seeds {
                continue;
            }
            let values: Vec<Vec<f64>> = v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    t.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect()
                })
                .collect();
            if values.len() < trials {
                continue;
            }
            let r = regrets(p, &values, &budgets);
            results
                .entry((name.to_string(), v["sampler"].as_str().unwrap().to_string()))
                .or_default()
                .push((seed, r, v["seconds"].as_f64().unwrap_or(f64::NAN)));
        }
    }

    println!(
        "Hypervolume regret HV* − HV, median [Q1, Q3] over seeds {first}–{}",
        first + seeds - 1
    );
    for p in &probs {
        println!(
            "\n#### {} ({} variables, {} objectives, reference {:?}, HV* = {:.4})\n",
            p.name, p.n_vars, p.n_obj, p.reference, p.hv_star
        );
        let head: Vec<String> = budgets.iter().map(|b| format!("@{b}")).collect();
        println!("| sampler | seeds | {} | s per run |", head.join(" | "));
        println!("|---|---|{}---|", "---|".repeat(budgets.len()));
        for ((pn, s), runs) in &results {
            if pn != p.name {
                continue;
            }
            let cells: Vec<String> = (0..budgets.len())
                .map(|k| {
                    let (m, q1, q3) = quantiles(runs.iter().map(|r| r.1[k]).collect());
                    format!("{} [{}, {}]", fmt(m), fmt(q1), fmt(q3))
                })
                .collect();
            let (secs, _, _) = quantiles(runs.iter().map(|r| r.2).collect());
            println!(
                "| {s} | {} | {} | {secs:.2} |",
                runs.len(),
                cells.join(" | ")
            );
        }
    }
    if std::env::var("MO_RAW").is_ok() {
        for ((pn, s), runs) in &results {
            for (seed, r, _) in runs {
                eprintln!("{pn} {s} {seed} {r:?}");
            }
        }
    }
}
