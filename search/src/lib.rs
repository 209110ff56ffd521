//! Search spaces, samplers and early stopping for hyperparameter tuning, with
//! Katib's names and semantics, so that one definition drives both a local
//! `kale tune` run and the Katib `Experiment` it can export.
//!
//! - [`space`]: [`SearchSpace`] = Katib's `spec.parameters`, (de)serialised with
//!   Katib's field names and validated with errors that name the parameter.
//! - [`sampler`]: the [`Sampler`] trait (ask/tell, seeded, deterministic) and
//!   `random`, `grid`, `tpe` and `bayesianoptimization`; for several
//!   objectives `nsga2`, `motpe` and their `auto`
//!   ([`sampler::multi_auto::multi_objective_sampler`]).
//! - [`pareto`]: dominance, non-dominated sorting, Pareto fronts and
//!   hypervolume, with Optuna's constraint semantics.
//! - [`stopping`]: `medianstop` and ASHA over intermediate values.
//! - [`katib`]: samplers and stopping rules from Katib algorithm names and settings.
//! - [`importance`]: fANOVA parameter importance from finished trials.
//! - [`Study`]: a small in-memory ask/tell loop.
//!
//! The crate knows nothing about notebooks or pipelines.
//!
//! ```
//! use kale_search::{Direction, SearchSpace, Study};
//! use kale_search::katib::{AlgorithmSetting, sampler_from_katib};
//!
//! // A Katib `parameters` block: feasible-space numbers are strings.
//! let space = SearchSpace::from_katib_json(r#"[
//!   {"name": "lr", "parameterType": "double",
//!    "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}},
//!   {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
//!   {"name": "act", "parameterType": "categorical", "feasibleSpace": {"list": ["relu", "tanh"]}}
//! ]"#).unwrap();
//!
//! let sampler = sampler_from_katib("tpe", &[AlgorithmSetting::new("random_state", 42)]).unwrap();
//! let mut study = Study::new(space.clone(), sampler, Direction::Maximize);
//! for _ in 0..30 {
//!     let (id, p) = study.ask().unwrap().expect("TPE never runs out");
//!     let lr = p["lr"].as_f64().unwrap();
//!     let acc = 1.0 - (lr.log10() + 2.0).powi(2) / 10.0 - if p["act"].as_str() == Some("relu") { 0.0 } else { 0.1 };
//!     study.tell(id, acc).unwrap();
//! }
//! assert!(study.best_trial().unwrap().value.unwrap() > 0.9);
//!
//! // And back to Katib's JSON.
//! assert_eq!(space.to_katib_json()[1]["feasibleSpace"]["max"], "4");
//! ```

pub mod importance;
pub mod katib;
pub mod pareto;
pub mod sampler;
pub mod space;
mod special;
pub mod stopping;
pub mod study;
pub mod trial;

pub use sampler::{Sampler, SamplerError, Suggestion};
pub use space::{
    Distribution, FeasibleSpace, ParamValue, ParameterSpec, ParameterType, Params, SearchSpace,
    SpaceError,
};
pub use study::Study;
pub use trial::{Direction, Trial, TrialState};
