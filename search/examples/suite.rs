//! Broad single-objective benchmark: many standard test functions in 2, 5 and 10
//! dimensions, each seed a differently shifted (or reflected) instance, so that
//! no sampler profits from an optimum at the centre or on a face of the box.
//!
//! ```text
//! cargo run --release -p kale-search --example suite                     # everything, 10 seeds
//! cargo run --release -p kale-search --example suite -- gp,tpe,random,auto
//! SUITE_SEEDS=40 SUITE_DIMS=5,10 SUITE_TRIALS=50 cargo run --release -p kale-search --example suite -- gp,tpe
//! cargo run --release -p kale-search --example suite -- askcost gp,tpe   # one ask at 100..500 trials
//! ```
//!
//! Knobs: `SUITE_SEEDS` (10), `SUITE_FIRST_SEED` (0), `SUITE_TRIALS` (100; the
//! budgets reported are 25, 50 and 100 where they fit), `SUITE_DIMS` (2,5,10),
//! `SUITE_FUNCTIONS` (comma list, by base name), `SUITE_THREADS` (2),
//! `SUITE_SETTINGS` (Katib settings for every sampler, `name=value,...`),
//! `SUITE_MIXED` (1: also run the mixed spaces with a categorical; 0: skip;
//! or a comma list of their names, e.g. `mixed5+int+cat4`),
//! `SUITE_RAW=FILE` (one line per run: problem, sampler, seed, regrets),
//! `SUITE_TRACE=1` (mixed spaces: every trial's level and value on stderr),
//! `SUITE_PARALLEL` (1: trials in flight at once, each ask seeing the others
//! running, as `kale tune --parallel` does).
//!
//! Regret is normalised per instance so that functions of very different scale
//! can be pooled: `(best − f*) / (median of f over 1000 uniform points − f*)`,
//! so 1 is "as good as a typical random point" and 1e-3 is a thousand times
//! closer to the optimum. Tables give medians over seeds (per function) and over
//! all functions × seeds (per dimension).

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::sync::Mutex;
use std::time::Instant;

use kale_search::katib::{AlgorithmSetting, sampler_from_katib};
use kale_search::{Direction, ParameterSpec, Params, SearchSpace, Study};

/// A splitmix64 generator for instance shifts, independent of the samplers' RNG.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A base function on its native domain, with its minimiser.
#[derive(Clone, Copy)]
struct Base {
    name: &'static str,
    /// `None`: any dimension; `Some(d)`: only that one.
    fixed_dim: Option<usize>,
    lo: f64,
    hi: f64,
    f: fn(&[f64]) -> f64,
    /// A minimiser and the minimum, for dimension `d`.
    opt: fn(usize) -> (Vec<f64>, f64),
    /// Shiftable (defined on all of ℝᵈ); else instances differ by reflections.
    shift: bool,
}

fn sphere(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}

fn ellipsoid(x: &[f64]) -> f64 {
    let d = x.len();
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            let e = if d > 1 {
                6.0 * i as f64 / (d - 1) as f64
            } else {
                0.0
            };
            10f64.powf(e) * v * v
        })
        .sum()
}

fn bent_cigar(x: &[f64]) -> f64 {
    x[0] * x[0] + 1e6 * x[1..].iter().map(|v| v * v).sum::<f64>()
}

fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

fn rastrigin(x: &[f64]) -> f64 {
    10.0 * x.len() as f64
        + x.iter()
            .map(|v| v * v - 10.0 * (2.0 * PI * v).cos())
            .sum::<f64>()
}

fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let s1 = x.iter().map(|v| v * v).sum::<f64>() / d;
    let s2 = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
}

fn levy(x: &[f64]) -> f64 {
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let d = w.len();
    let mut s = (PI * w[0]).sin().powi(2);
    for wi in &w[..d - 1] {
        s += (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2));
    }
    s + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * PI * w[d - 1]).sin().powi(2))
}

fn styblinski_tang(x: &[f64]) -> f64 {
    0.5 * x
        .iter()
        .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
        .sum::<f64>()
}

fn branin(x: &[f64]) -> f64 {
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    // Native domain x1 ∈ [−5, 10], x2 ∈ [0, 15]; here both come in [0, 1].
    let (x1, x2) = (-5.0 + 15.0 * x[0], 15.0 * x[1]);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const H3_A: [[f64; 3]; 4] = [
    [3.0, 10.0, 30.0],
    [0.1, 10.0, 35.0],
    [3.0, 10.0, 30.0],
    [0.1, 10.0, 35.0],
];
const H3_P: [[f64; 3]; 4] = [
    [3689.0, 1170.0, 2673.0],
    [4699.0, 4387.0, 7470.0],
    [1091.0, 8732.0, 5547.0],
    [381.0, 5743.0, 8828.0],
];
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
const H_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

fn hartmann3(x: &[f64]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..3)
                .map(|j| H3_A[i][j] * (x[j] - 1e-4 * H3_P[i][j]).powi(2))
                .sum();
            H_ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

fn hartmann6(x: &[f64]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| H6_A[i][j] * (x[j] - 1e-4 * H6_P[i][j]).powi(2))
                .sum();
            H_ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

/// A uniformly random rotation: Gram–Schmidt on a Gaussian matrix.
fn random_rotation(d: usize, rng: &mut Mix) -> Vec<f64> {
    let mut gauss = || {
        let (u, v) = (rng.next().max(1e-300), rng.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
    };
    let mut q: Vec<Vec<f64>> = Vec::new();
    while q.len() < d {
        let mut r: Vec<f64> = (0..d).map(|_| gauss()).collect();
        for b in &q {
            let p: f64 = r.iter().zip(b).map(|(a, b)| a * b).sum();
            r.iter_mut().zip(b).for_each(|(a, b)| *a -= p * b);
        }
        let n = r.iter().map(|a| a * a).sum::<f64>().sqrt();
        if n > 1e-6 {
            q.push(r.into_iter().map(|a| a / n).collect());
        }
    }
    q.concat()
}

fn bases() -> Vec<Base> {
    fn at(v: f64, f: f64) -> impl Fn(usize) -> (Vec<f64>, f64) {
        move |d| (vec![v; d], f)
    }
    vec![
        Base {
            name: "sphere",
            fixed_dim: None,
            lo: -5.0,
            hi: 5.0,
            f: sphere,
            opt: |d| at(0.0, 0.0)(d),
            shift: true,
        },
        Base {
            name: "ellipsoid",
            fixed_dim: None,
            lo: -5.0,
            hi: 5.0,
            f: ellipsoid,
            opt: |d| at(0.0, 0.0)(d),
            shift: true,
        },
        Base {
            name: "bent_cigar",
            fixed_dim: None,
            lo: -5.0,
            hi: 5.0,
            f: bent_cigar,
            opt: |d| at(0.0, 0.0)(d),
            shift: true,
        },
        Base {
            name: "rosenbrock",
            fixed_dim: None,
            lo: -5.0,
            hi: 10.0,
            f: rosenbrock,
            opt: |d| at(1.0, 0.0)(d),
            shift: true,
        },
        Base {
            name: "rastrigin",
            fixed_dim: None,
            lo: -5.12,
            hi: 5.12,
            f: rastrigin,
            opt: |d| at(0.0, 0.0)(d),
            shift: true,
        },
        Base {
            name: "ackley",
            fixed_dim: None,
            lo: -32.768,
            hi: 32.768,
            f: ackley,
            opt: |d| at(0.0, 0.0)(d),
            shift: true,
        },
        Base {
            name: "levy",
            fixed_dim: None,
            lo: -10.0,
            hi: 10.0,
            f: levy,
            opt: |d| at(1.0, 0.0)(d),
            shift: true,
        },
        Base {
            name: "styblinski_tang",
            fixed_dim: None,
            lo: -5.0,
            hi: 5.0,
            f: styblinski_tang,
            opt: |d| {
                (
                    vec![-2.903_534_027_771_177; d],
                    -39.166_165_703_771_42 * d as f64,
                )
            },
            shift: false,
        },
        Base {
            name: "branin",
            fixed_dim: Some(2),
            lo: 0.0,
            hi: 1.0,
            f: branin,
            opt: |_| {
                (
                    vec![(PI + 5.0) / 15.0, 2.275 / 15.0],
                    0.397_887_357_729_738_1,
                )
            },
            shift: false,
        },
        Base {
            name: "hartmann3",
            fixed_dim: Some(3),
            lo: 0.0,
            hi: 1.0,
            f: hartmann3,
            opt: |_| {
                let x = vec![0.114_614, 0.555_649, 0.852_547];
                let f = hartmann3(&x);
                (x, f)
            },
            shift: false,
        },
        Base {
            name: "hartmann6",
            fixed_dim: Some(6),
            lo: 0.0,
            hi: 1.0,
            f: hartmann6,
            opt: |_| {
                let x = vec![
                    0.201_689_52,
                    0.150_010_69,
                    0.476_873_98,
                    0.275_332_43,
                    0.311_651_62,
                    0.657_300_54,
                ];
                let f = hartmann6(&x);
                (x, f)
            },
            shift: false,
        },
    ]
}

/// One seeded instance: the base function with its optimum moved to a random
/// point of the inner 80% of the box and the function rotated about it by a
/// random orthogonal matrix (shiftable functions: as in BBOB, a rotation makes
/// ellipsoid, bent cigar, Rastrigin, ... non-separable, which is what hurts a
/// model with one lengthscale per axis), or with random per-axis reflections
/// (the others, whose optimum is off-centre already).
struct Instance {
    base: Base,
    d: usize,
    /// Where the optimum is moved to (shiftable functions).
    centre: Vec<f64>,
    /// The base function's own minimiser.
    base_opt: Vec<f64>,
    /// Row-major orthogonal `d × d` rotation about the optimum (identity when not rotated).
    rot: Vec<f64>,
    flip: Vec<bool>,
    f_opt: f64,
    /// Median of f over 1000 uniform points: the normaliser of regret.
    f_typical: f64,
}

impl Instance {
    fn new(base: Base, d: usize, seed: u64) -> Instance {
        let mut rng = Mix(seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
            ^ base.name.len() as u64
            ^ (d as u64) << 32);
        for c in base.name.bytes() {
            rng.0 = rng.0.wrapping_mul(31).wrapping_add(c as u64);
        }
        let (x_opt, f_opt) = (base.opt)(d);
        let w = base.hi - base.lo;
        let rotate = base.shift && std::env::var("SUITE_ROTATE").map_or(true, |v| v != "0");
        let (centre, flip) = if base.shift {
            let c = (0..d)
                .map(|_| base.lo + w * (0.1 + 0.8 * rng.next()))
                .collect();
            (c, vec![false; d])
        } else {
            (x_opt.clone(), (0..d).map(|_| rng.next() < 0.5).collect())
        };
        let rot = if rotate {
            random_rotation(d, &mut rng)
        } else {
            (0..d * d)
                .map(|k| if k / d == k % d { 1.0 } else { 0.0 })
                .collect()
        };
        let mut inst = Instance {
            base,
            d,
            centre,
            base_opt: x_opt,
            rot,
            flip,
            f_opt,
            f_typical: 0.0,
        };
        let mut vals: Vec<f64> = (0..1000)
            .map(|_| {
                let x: Vec<f64> = (0..d).map(|_| base.lo + w * rng.next()).collect();
                inst.eval(&x)
            })
            .collect();
        vals.sort_by(f64::total_cmp);
        inst.f_typical = vals[500];
        inst
    }

    fn eval(&self, x: &[f64]) -> f64 {
        let d = self.d;
        let u: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let v = if self.flip[i] {
                    self.base.lo + self.base.hi - v
                } else {
                    v
                };
                v - self.centre[i]
            })
            .collect();
        let z: Vec<f64> = (0..d)
            .map(|i| self.base_opt[i] + (0..d).map(|j| self.rot[i * d + j] * u[j]).sum::<f64>())
            .collect();
        (self.base.f)(&z)
    }

    fn space(&self) -> Vec<ParameterSpec> {
        (0..self.d)
            .map(|i| ParameterSpec::double(format!("x{i:02}"), self.base.lo, self.base.hi))
            .collect()
    }

    fn objective(&self, p: &Params) -> f64 {
        let x: Vec<f64> = (0..self.d)
            .map(|i| p[&format!("x{i:02}")].as_f64().expect("double"))
            .collect();
        self.eval(&x)
    }
}

/// A mixed space: `d_num` doubles, an int and a categorical of `k` levels. Each
/// level moves the continuous optimum and adds an offset; the best level
/// (offset 0) is drawn per seed, so no sampler wins by preferring the first or
/// last label. A "hit" is a run whose best trial has the best level.
///
/// Usually (as with an activation function or a kernel and a learning rate) the
/// good settings of the doubles are similar for every level: the levels'
/// optima lie within ±0.15 of a common point. The `-far` variant draws each
/// level's optimum independently over the whole box: four separate 5-d
/// problems, where a level's worth shows only once it is optimised on its own.
struct Mixed {
    name: String,
    d_num: usize,
    /// Per level: optimum of the doubles (in [0, 1]) and offset.
    centres: Vec<Vec<f64>>,
    offsets: Vec<f64>,
    int_opt: i64,
    best_level: usize,
    labels: Vec<String>,
}

impl Mixed {
    fn new(d_num: usize, k: usize, far: bool, seed: u64) -> Mixed {
        let mut rng = Mix(seed ^ 0x51ed_270b_2ff7_1b4d ^ ((d_num * 31 + k) as u64) << 40);
        let common: Vec<f64> = (0..d_num).map(|_| 0.25 + 0.5 * rng.next()).collect();
        let centres: Vec<Vec<f64>> = (0..k)
            .map(|_| {
                (0..d_num)
                    .map(|i| {
                        if far {
                            0.1 + 0.8 * rng.next()
                        } else {
                            common[i] + 0.3 * (rng.next() - 0.5)
                        }
                    })
                    .collect()
            })
            .collect();
        let best_level = ((rng.next() * k as f64) as usize).min(k - 1);
        // Other levels are worse by 0.2..0.7, less than the continuous part
        // varies (about 0..d_num), so a level's worth shows only near its optimum.
        let offsets = (0..k)
            .map(|c| {
                if c == best_level {
                    0.0
                } else {
                    0.2 + 0.5 * rng.next()
                }
            })
            .collect();
        let int_opt = 2 + (rng.next() * 7.0) as i64;
        Mixed {
            name: format!("mixed{}+int+cat{k}{}", d_num, if far { "-far" } else { "" }),
            d_num,
            centres,
            offsets,
            int_opt,
            best_level,
            labels: (0..k).map(|c| format!("c{c}")).collect(),
        }
    }

    fn space(&self) -> Vec<ParameterSpec> {
        let mut s: Vec<ParameterSpec> = (0..self.d_num)
            .map(|i| ParameterSpec::double(format!("x{i}"), 0.0, 1.0))
            .collect();
        s.push(ParameterSpec::int("n", 1, 10));
        s.push(ParameterSpec::categorical("cat", &self.labels));
        s
    }

    fn level(&self, p: &Params) -> usize {
        let l = p["cat"].as_str().expect("categorical");
        self.labels
            .iter()
            .position(|x| x == l)
            .expect("known label")
    }

    fn objective(&self, p: &Params) -> f64 {
        let c = self.level(p);
        let quad: f64 = (0..self.d_num)
            .map(|i| {
                let v = p[&format!("x{i}")].as_f64().expect("double");
                // A rotated-ish valley: scaled squares plus a cross term.
                (2.0 + i as f64) * (v - self.centres[c][i]).powi(2)
            })
            .sum();
        let n = p["n"].as_f64().expect("int");
        quad + self.offsets[c] + 0.02 * (n - self.int_opt as f64).powi(2)
    }
}

fn make_study(space: Vec<ParameterSpec>, sampler: &str, seed: u64, budget: usize) -> Study {
    let space = SearchSpace::new(space).expect("valid benchmark space");
    let algorithm = match sampler {
        "gp" => "bayesianoptimization",
        s => s,
    };
    let mut settings = vec![AlgorithmSetting::new("random_state", seed)];
    if sampler == "auto" {
        // As `kale tune` does: auto knows the trial budget.
        settings.push(AlgorithmSetting::new("max_trials", budget));
    }
    if let Ok(extra) = std::env::var("SUITE_SETTINGS") {
        for kv in extra.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').expect("name=value");
            settings.push(AlgorithmSetting::new(k, v));
        }
    }
    let s = sampler_from_katib(algorithm, &settings).expect("known sampler and settings");
    Study::new(space, s, Direction::Minimize)
}

const BUDGETS: [usize; 3] = [25, 50, 100];

struct RunResult {
    /// Best value after each budget that fits in the run.
    best_at: Vec<f64>,
    best_params: Vec<Option<Params>>,
    secs: f64,
    max_ask_ms: f64,
    /// Share of the proposals after the first 10 with a double on a face of the box.
    on_face: f64,
}

fn run<F: Fn(&Params) -> f64>(
    space: Vec<ParameterSpec>,
    f: F,
    sampler: &str,
    seed: u64,
    trials: usize,
) -> RunResult {
    let bounds: Vec<(String, f64, f64)> = space
        .iter()
        .filter(|p| p.parameter_type == kale_search::ParameterType::Double)
        .map(|p| {
            let fs = &p.feasible_space;
            (p.name.clone(), fs.min.unwrap_or(0.0), fs.max.unwrap_or(1.0))
        })
        .collect();
    let mut faces = 0usize;
    let mut study = make_study(space, sampler, seed, trials);
    let t0 = Instant::now();
    let mut best = f64::INFINITY;
    let mut best_p = None;
    let mut best_at = Vec::new();
    let mut best_params = Vec::new();
    let mut max_ask_ms: f64 = 0.0;
    // `SUITE_PARALLEL=k`: k trials in flight, as `kale tune --parallel k` runs
    // them: each ask sees the others as running, and trials finish in the
    // order they started. Budgets count finished trials.
    let parallel: usize = env("SUITE_PARALLEL", 1usize).max(1);
    let mut in_flight: std::collections::VecDeque<(u64, Params)> = Default::default();
    let mut asked = 0;
    for i in 0..trials {
        while asked < trials && in_flight.len() < parallel {
            let ta = Instant::now();
            let Some(next) = study.ask().expect("sampler works on the space") else {
                break;
            };
            max_ask_ms = max_ask_ms.max(ta.elapsed().as_secs_f64() * 1e3);
            asked += 1;
            in_flight.push_back(next);
        }
        let Some((id, p)) = in_flight.pop_front() else {
            break;
        };
        if i >= 10
            && bounds.iter().any(|(n, lo, hi)| {
                let v = p[n].as_f64().unwrap_or(f64::NAN);
                let tol = std::env::var("SUITE_FACE_TOL")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1e-9)
                    * (hi - lo);
                v <= lo + tol || v >= hi - tol
            })
        {
            faces += 1;
        }
        let v = f(&p);
        study.tell(id, v).expect("running trial");
        if v < best {
            best = v;
            best_p = Some(p);
        }
        if BUDGETS.contains(&(i + 1)) {
            best_at.push(best);
            best_params.push(best_p.clone());
        }
    }
    RunResult {
        best_at,
        best_params,
        secs: t0.elapsed().as_secs_f64(),
        max_ask_ms,
        on_face: faces as f64 / trials.saturating_sub(10).max(1) as f64,
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < s.len() {
        s[i] * (1.0 - frac) + s[i + 1] * frac
    } else {
        s[i]
    }
}

fn fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() < 1e-2 || v.abs() >= 1e4 {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}

/// One run's outcome: seed, normalised regret at each budget, best-category
/// hits at each budget, seconds, slowest ask in ms, share of proposals on a face.
type Row = (u64, Vec<f64>, Vec<bool>, f64, f64, f64);

/// A job for the thread pool: one (problem, sampler, seed) run.
struct Job {
    problem: String,
    group: String,
    sampler: String,
    seed: u64,
}

/// `suite askcost SAMPLERS`: the cost of one ask at a history of n trials, for
/// the budgets `auto` decides between. The history is random points of a
/// rotated sphere (a GP's ask costs the same wherever the points are: the fit
/// is O(n³) in the trials and linear in the dimensions); each cell is the
/// median of 3 asks, each after one more trial, as in a running search (the
/// fit starts from the previous ask's hyperparameters).
fn ask_cost(samplers: &[String]) {
    let dims: Vec<usize> = std::env::var("SUITE_DIMS")
        .unwrap_or_else(|_| "2,10,20".into())
        .split(',')
        .map(|s| s.parse().expect("dimension"))
        .collect();
    let sizes: Vec<usize> = std::env::var("SUITE_ASK_AT")
        .unwrap_or_else(|_| "100,200,300,500".into())
        .split(',')
        .map(|s| s.parse().expect("trial count"))
        .collect();
    println!("### One ask, ms, at n finished trials\n");
    println!(
        "| dims | sampler |{}",
        sizes
            .iter()
            .map(|n| format!(" n={n} |"))
            .collect::<String>()
    );
    println!("|---|---|{}", "---|".repeat(sizes.len()));
    let base = bases()
        .into_iter()
        .find(|b| b.name == "sphere")
        .expect("sphere");
    for &d in &dims {
        let inst = Instance::new(base, d, 0);
        let space = SearchSpace::new(inst.space()).expect("valid space");
        for sampler in samplers {
            let mut line = format!("| {d}-d | {sampler} |");
            for &n in &sizes {
                let mut history = make_study(inst.space(), "random", 1, n + 3);
                for _ in 0..n - 1 {
                    let (id, p) = history.ask().unwrap().unwrap();
                    history.tell(id, inst.objective(&p)).unwrap();
                }
                let algorithm = if sampler == "gp" {
                    "bayesianoptimization"
                } else {
                    sampler.as_str()
                };
                let mut s =
                    sampler_from_katib(algorithm, &[AlgorithmSetting::new("random_state", 7)])
                        .expect("known sampler");
                let mut times = Vec::new();
                for k in 0..4 {
                    let t0 = Instant::now();
                    s.ask(&space, history.trials(), Direction::Minimize)
                        .expect("ask");
                    if k > 0 {
                        times.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    let (id, p) = history.ask().unwrap().unwrap();
                    history.tell(id, inst.objective(&p)).unwrap();
                }
                line += &format!(" {} |", fmt(quantile(&times, 0.5)));
            }
            println!("{line}");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "askcost") {
        let samplers: Vec<String> = args
            .get(1)
            .map_or("gp,tpe".to_string(), |s| s.clone())
            .split(',')
            .map(String::from)
            .collect();
        ask_cost(&samplers);
        return;
    }
    let samplers: Vec<String> = args
        .first()
        .map_or("gp,tpe,random".to_string(), |s| s.clone())
        .split(',')
        .map(String::from)
        .collect();
    let seeds: u64 = env("SUITE_SEEDS", 10);
    let first: u64 = env("SUITE_FIRST_SEED", 0);
    let trials: usize = env("SUITE_TRIALS", 100);
    let threads: usize = env("SUITE_THREADS", 2);
    let dims: Vec<usize> = std::env::var("SUITE_DIMS")
        .unwrap_or_else(|_| "2,5,10".into())
        .split(',')
        .map(|s| s.parse().expect("dimension"))
        .collect();
    let only = std::env::var("SUITE_FUNCTIONS").ok();
    // `SUITE_MIXED`: 1 (all mixed spaces), 0 (none) or a comma list of their names.
    let mixed_sel = std::env::var("SUITE_MIXED").unwrap_or_else(|_| "1".into());
    let with_mixed = mixed_sel != "0";

    // Problems: each scalable base in every dimension asked for; fixed-dimension
    // ones in the group of the nearest listed dimension.
    let mut problems: Vec<(String, String, Base, usize)> = Vec::new();
    for b in bases() {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|f| f == b.name))
        {
            continue;
        }
        match b.fixed_dim {
            None => {
                for &d in &dims {
                    problems.push((format!("{}{d}d", b.name), format!("{d}-d"), b, d));
                }
            }
            Some(fd) => {
                let g = *dims
                    .iter()
                    .min_by_key(|&&d| d.abs_diff(fd))
                    .expect("a dimension");
                if g.abs_diff(fd) <= 1 {
                    problems.push((format!("{}{fd}d", b.name), format!("{g}-d"), b, fd));
                }
            }
        }
    }
    let mixed_defs: Vec<(usize, usize, bool)> = if with_mixed {
        [(2, 3, false), (5, 4, false), (5, 4, true)]
            .into_iter()
            .filter(|&(dn, k, far)| {
                mixed_sel == "1"
                    || mixed_sel
                        .split(',')
                        .any(|n| n == Mixed::new(dn, k, far, 0).name)
            })
            .collect()
    } else {
        vec![]
    };

    let mut jobs = Vec::new();
    for s in &samplers {
        for (name, group, _, _) in &problems {
            for seed in first..first + seeds {
                jobs.push(Job {
                    problem: name.clone(),
                    group: group.clone(),
                    sampler: s.clone(),
                    seed,
                });
            }
        }
        for &(dn, k, far) in &mixed_defs {
            for seed in first..first + seeds {
                jobs.push(Job {
                    problem: Mixed::new(dn, k, far, seed).name,
                    group: "mixed".into(),
                    sampler: s.clone(),
                    seed,
                });
            }
        }
    }
    // Longest first (GP in high dimension), so the pool does not end on one straggler.
    jobs.sort_by_key(|j| {
        std::cmp::Reverse(
            (j.sampler == "gp" || j.sampler == "auto") as usize * 100 + j.problem.len(),
        )
    });

    // (problem, sampler) -> per seed (normalised regrets at budgets, hit flags, secs, max ask ms)
    type Rows = BTreeMap<(String, String), Vec<Row>>;
    let results: Mutex<Rows> = Mutex::new(BTreeMap::new());
    let next = Mutex::new(0usize);
    let started = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..threads.max(1) {
            sc.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(job) = jobs.get(i) else { break };
                    let (norm, hits, secs, ask, face) = if job.group == "mixed" {
                        let (dn, k, far) = mixed_defs
                            .iter()
                            .copied()
                            .find(|&(dn, k, far)| Mixed::new(dn, k, far, 0).name == job.problem)
                            .expect("mixed problem");
                        let m = Mixed::new(dn, k, far, job.seed);
                        let trace = Mutex::new(Vec::new());
                        let r = run(
                            m.space(),
                            |p| {
                                let v = m.objective(p);
                                trace.lock().unwrap().push((m.level(p), v));
                                v
                            },
                            &job.sampler,
                            job.seed,
                            trials,
                        );
                        if std::env::var("SUITE_TRACE").is_ok_and(|v| v == "1") {
                            // Each trial's level (`*` marks the best level) and value,
                            // to see how a sampler spread its trials over the levels.
                            let t = trace.into_inner().unwrap();
                            eprintln!(
                                "trace {} {} seed {} best level {} (offsets {}): {}",
                                job.problem,
                                job.sampler,
                                job.seed,
                                m.best_level,
                                m.offsets
                                    .iter()
                                    .map(|o| format!("{o:.2}"))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                t.iter()
                                    .map(|(l, v)| format!(
                                        "{l}{}:{v:.3}",
                                        if *l == m.best_level { "*" } else { "" }
                                    ))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            );
                        }
                        // Normaliser: the typical value with the best level (k levels' offsets ~1).
                        let norm = r.best_at.iter().map(|b| b.max(0.0)).collect();
                        let hits = r
                            .best_params
                            .iter()
                            .map(|p| p.as_ref().is_some_and(|p| m.level(p) == m.best_level))
                            .collect();
                        (norm, hits, r.secs, r.max_ask_ms, r.on_face)
                    } else {
                        let (_, _, base, d) = problems
                            .iter()
                            .find(|p| p.0 == job.problem)
                            .expect("problem");
                        let inst = Instance::new(*base, *d, job.seed);
                        let r = run(
                            inst.space(),
                            |p| inst.objective(p),
                            &job.sampler,
                            job.seed,
                            trials,
                        );
                        let norm = r
                            .best_at
                            .iter()
                            .map(|b| ((b - inst.f_opt) / (inst.f_typical - inst.f_opt)).max(0.0))
                            .collect();
                        (norm, Vec::new(), r.secs, r.max_ask_ms, r.on_face)
                    };
                    results
                        .lock()
                        .unwrap()
                        .entry((job.problem.clone(), job.sampler.clone()))
                        .or_default()
                        .push((job.seed, norm, hits, secs, ask, face));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let budgets: Vec<usize> = BUDGETS.iter().copied().filter(|&b| b <= trials).collect();

    if let Ok(path) = std::env::var("SUITE_RAW") {
        use std::io::Write;
        let mut out = std::fs::File::create(path).expect("raw file");
        for ((p, s), rows) in &results {
            for (seed, norm, hits, secs, ask, face) in rows {
                writeln!(
                    out,
                    "{p}\t{s}\t{seed}\t{}\t{}\t{secs:.3}\t{ask:.2}\t{face:.3}",
                    norm.iter()
                        .map(|v| format!("{v:.6e}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    hits.iter()
                        .map(|h| (*h as u8).to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
                .expect("raw file");
            }
        }
    }

    println!(
        "Normalised regret, {seeds} seeds ({first}..{}), {trials} trials, wall {:.0} s\n",
        first + seeds,
        started.elapsed().as_secs_f64()
    );
    let group_of = |p: &str| -> String {
        jobs.iter()
            .find(|j| j.problem == p)
            .map(|j| j.group.clone())
            .unwrap_or_default()
    };
    // Per dimension: median over all functions × seeds; and how many functions
    // each sampler has the lowest median on.
    let mut groups: Vec<String> = dims.iter().map(|d| format!("{d}-d")).collect();
    if with_mixed {
        groups.push("mixed".into());
    }
    println!("### Median normalised regret over all functions × seeds\n");
    let mut header = "| dims | sampler |".to_string();
    for b in &budgets {
        header += &format!(" @{b} |");
    }
    header += " functions best @50 | s per run | max ask ms | on a face |";
    println!("{header}");
    println!("|{}", "---|".repeat(6 + budgets.len()));
    for g in &groups {
        let probs: Vec<String> = results
            .keys()
            .map(|(p, _)| p.clone())
            .filter(|p| group_of(p) == *g)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if probs.is_empty() {
            continue;
        }
        let bi50 = budgets.iter().position(|&b| b == 50);
        for s in &samplers {
            let mut line = format!("| {g} | {s} |");
            for bi in 0..budgets.len() {
                let all: Vec<f64> = probs
                    .iter()
                    .filter_map(|p| results.get(&(p.clone(), s.clone())))
                    .flat_map(|rows| rows.iter().map(move |r| r.1[bi]))
                    .collect();
                line += &format!(
                    " {} |",
                    if all.is_empty() {
                        "-".into()
                    } else {
                        fmt(quantile(&all, 0.5))
                    }
                );
            }
            // Functions where this sampler's median @50 is the lowest (ties count for all).
            let wins = bi50.map_or(0, |bi| {
                probs
                    .iter()
                    .filter(|p| {
                        let med = |s: &String| {
                            results.get(&((*p).clone(), s.clone())).map(|rows| {
                                quantile(&rows.iter().map(|r| r.1[bi]).collect::<Vec<_>>(), 0.5)
                            })
                        };
                        let mine = med(s);
                        mine.is_some_and(|m| samplers.iter().all(|o| med(o).is_none_or(|v| m <= v)))
                    })
                    .count()
            });
            let runs: Vec<&Row> = probs
                .iter()
                .filter_map(|p| results.get(&(p.clone(), s.clone())))
                .flatten()
                .collect();
            let secs = runs.iter().map(|r| r.3).sum::<f64>() / runs.len().max(1) as f64;
            let ask = runs.iter().map(|r| r.4).fold(0.0, f64::max);
            let face = 100.0 * runs.iter().map(|r| r.5).sum::<f64>() / runs.len().max(1) as f64;
            line += &format!(
                " {wins}/{} | {secs:.2} | {ask:.0} | {face:.0}% |",
                probs.len()
            );
            println!("{line}");
        }
    }
    println!();

    println!(
        "### Per function: median normalised regret @{}\n",
        budgets
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" / @")
    );
    println!("| function | {} |", samplers.join(" | "));
    println!("|---|{}", "---|".repeat(samplers.len()));
    let all_probs: Vec<String> = results
        .keys()
        .map(|(p, _)| p.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for p in &all_probs {
        let mut line = format!("| {p} |");
        for s in &samplers {
            let cell = results
                .get(&(p.clone(), s.clone()))
                .map_or("-".into(), |rows| {
                    (0..budgets.len())
                        .map(|bi| {
                            fmt(quantile(
                                &rows.iter().map(|r| r.1[bi]).collect::<Vec<_>>(),
                                0.5,
                            ))
                        })
                        .collect::<Vec<_>>()
                        .join(" / ")
                });
            line += &format!(" {cell} |");
        }
        println!("{line}");
    }
    println!();

    if with_mixed {
        println!(
            "### Mixed spaces: runs whose best trial has the best category, @{}\n",
            budgets
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(" / @")
        );
        println!("| problem | {} |", samplers.join(" | "));
        println!("|---|{}", "---|".repeat(samplers.len()));
        for p in all_probs.iter().filter(|p| group_of(p) == "mixed") {
            let mut line = format!("| {p} |");
            for s in &samplers {
                let cell = results
                    .get(&(p.clone(), s.clone()))
                    .map_or("-".into(), |rows| {
                        (0..budgets.len())
                            .map(|bi| {
                                format!(
                                    "{}/{}",
                                    rows.iter().filter(|r| r.2[bi]).count(),
                                    rows.len()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" / ")
                    });
                line += &format!(" {cell} |");
            }
            println!("{line}");
        }
        println!();
    }
}
