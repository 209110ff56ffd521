//! Property tests: any valid space, any sampler → every sample is feasible, and
//! the space round-trips through Katib JSON.

use kale_search::katib::{AlgorithmSetting, sampler_from_katib};
use kale_search::{Direction, Distribution, ParameterSpec, SearchSpace, Trial};
use proptest::prelude::*;

fn param(i: usize) -> impl Strategy<Value = ParameterSpec> {
    let name = format!("p{i}");
    let n1 = name.clone();
    let n2 = name.clone();
    let n3 = name.clone();
    prop_oneof![
        (
            -1e3f64..1e3,
            1e-3f64..1e3,
            prop::option::of(2usize..20),
            prop::bool::ANY
        )
            .prop_map(move |(lo, w, steps, log)| {
                let (lo, hi) = if log {
                    (lo.abs() + 1e-3, lo.abs() + 1e-3 + w)
                } else {
                    (lo, lo + w)
                };
                let mut p = ParameterSpec::double(n1.clone(), lo, hi);
                if let Some(k) = steps {
                    p = p.with_step(w / k as f64);
                }
                if log { p.log() } else { p }
            }),
        (-50i64..50, 1i64..100, 1i64..5, 0usize..4).prop_map(move |(lo, w, step, dist)| {
            let dist = [
                Distribution::Uniform,
                Distribution::Normal,
                Distribution::LogUniform,
                Distribution::LogNormal,
            ][dist];
            let lo = if dist.is_log() { lo.abs() + 1 } else { lo };
            ParameterSpec::int(n2.clone(), lo, lo + w)
                .with_step(step.min(w) as f64)
                .with_distribution(dist)
        }),
        prop::collection::btree_set("[a-z]{1,6}", 1..6).prop_map(move |set| {
            ParameterSpec::categorical(n3.clone(), &set.into_iter().collect::<Vec<_>>())
        }),
        prop::collection::btree_set(-1000i32..1000, 1..6).prop_map(move |set| {
            ParameterSpec::discrete(
                name.clone(),
                &set.into_iter().map(|v| v as f64 / 4.0).collect::<Vec<_>>(),
            )
        }),
    ]
}

fn space() -> impl Strategy<Value = SearchSpace> {
    (1usize..5)
        .prop_flat_map(|n| (0..n).map(param).collect::<Vec<_>>())
        .prop_map(|params| SearchSpace::new(params).expect("generated spaces are valid"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn samples_are_feasible(space in space(), seed in 0u64..1000, algo in prop::sample::select(vec!["random", "tpe", "bayesianoptimization"])) {
        let mut s = sampler_from_katib(algo, &[
            AlgorithmSetting::new("random_state", seed),
        ]).unwrap();
        let n = if algo == "bayesianoptimization" { 13 } else { 25 };
        let mut trials = Vec::new();
        for i in 0..n {
            let p = s.ask(&space, &trials, Direction::Minimize).unwrap().params().unwrap();
            prop_assert!(space.check(&p).is_ok(), "{:?}: {:?}", space.check(&p), p);
            let v = p.values().filter_map(|v| v.as_f64()).sum::<f64>() + i as f64 * 0.01;
            trials.push(Trial::complete(i, p, v));
        }
    }

    #[test]
    fn katib_json_round_trips(space in space()) {
        let json = space.to_katib_json();
        for p in json.as_array().unwrap() {
            for k in ["min", "max", "step"] {
                if let Some(v) = p["feasibleSpace"].get(k) {
                    prop_assert!(v.is_string(), "{} must be a string: {}", k, v);
                }
            }
        }
        let back: SearchSpace = serde_json::from_value(json).unwrap();
        prop_assert_eq!(back, space);
    }
}
