//! Wall time of fANOVA importance at the sizes `kale experiments show` and the
//! dashboard meet, and its answer on a function with known variance shares.
//!
//! ```text
//! cargo run --release -p kale-search --example importance
//! ```

use std::time::Instant;

use kale_search::importance::{FanovaOptions, fanova};
use kale_search::{ParamValue, ParameterSpec, Params, SearchSpace, Trial, TrialState};
use rand::{RngExt, SeedableRng};

fn main() {
    for dims in [3usize, 10] {
        let space = SearchSpace::new(
            (0..dims)
                .map(|i| ParameterSpec::double(format!("x{i}"), 0.0, 1.0))
                .collect(),
        )
        .unwrap();
        for n in [100usize, 1000, 10_000] {
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
            let trials: Vec<Trial> = (0..n)
                .map(|k| {
                    let x: Vec<f64> = (0..dims).map(|_| rng.random_range(0.0..1.0)).collect();
                    // Var(2·x0) : Var(x1) = 4 : 1, the other parameters do nothing.
                    let y = 2.0 * x[0] + x[1];
                    let p: Params = x
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("x{i}"), ParamValue::Double(*v)))
                        .collect();
                    let mut t = Trial::running(k as u64, p);
                    t.state = TrialState::Complete;
                    t.value = Some(y);
                    t
                })
                .collect();
            let start = Instant::now();
            let imp = fanova(&space, &trials, &FanovaOptions::default()).unwrap();
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let top: Vec<String> = imp
                .iter()
                .take(3)
                .map(|p| format!("{}={:.3}", p.name, p.importance))
                .collect();
            println!(
                "{dims:>2} params, {n:>6} trials: {ms:>8.1} ms  {}",
                top.join(" ")
            );
        }
    }
}
