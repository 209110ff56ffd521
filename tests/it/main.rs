//! The integration-test binary: each module drives the real `kale` binary on real
//! notebooks (written to temporary directories or taken from `../shared/corpus`).

mod browser;
mod cache_snapshot;
mod corpus;
mod dashboard;
mod debug;
mod differential;
mod errors;
mod events;
mod fork_server;
mod fuzz;
mod hardening;
mod inspect;
mod katib_cluster;
mod kfp_local;
mod kubeflow;
mod kubeflow_kfp;
mod lifecycle;
mod marshal;
mod multi_objective;
mod resources;
mod run;
mod support;
mod tune;
mod validate;
