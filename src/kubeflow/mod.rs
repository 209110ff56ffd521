//! Running a notebook's pipeline on Kubernetes with Kubeflow Pipelines (KFP) v2 and
//! Katib. kale only compiles, submits and watches; the cluster does the running.
//!
//! The manifest builders ([`kfp`], [`katib_experiment`]) are pure functions of the
//! [`crate::pipeline::Pipeline`]; the clients that talk to a cluster live apart from
//! them, so the builders are tested without any network.
//!
//! How the pieces fit:
//! - `kale compile --target kfp` writes [`kfp::compile`]'s IR YAML.
//! - `kale submit` uploads it and starts one run.
//! - `kale compile --target katib` / `kale tune --katib` build a Katib Experiment whose
//!   every trial is a `batch/v1` Job running the trial driver (`trial_driver.py`, shipped
//!   inline, run by the steps' image's Python), which starts one KFP run of the uploaded
//!   pipeline version with the trial's parameters and prints the run's metrics as
//!   `name=value` lines for Katib's StdOut collector. `kale trial` runs the same driver.
//! - [`cluster`] is the Kubernetes client (Katib's objects in and out, the pod's own
//!   image); [`katib_view`] reads them (phases, trial states, the best trial), purely;
//!   [`katib_tune`] is `kale tune --katib` as one operation over the two.
//!
//! (`kale_search::katib` is the search crate's other side of Katib: samplers and
//! stopping rules from an Experiment's `algorithm` and `earlyStopping` blocks.)

pub mod cluster;
pub mod compile;
pub mod katib_experiment;
pub mod katib_tune;
pub mod katib_view;
pub mod kfp;
pub mod kfp_client;
pub mod packages;
pub mod pod;
pub mod submit;
