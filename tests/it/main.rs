//! The integration-test binary: each module drives the real `kale` binary on real
//! notebooks (written to temporary directories or taken from `../shared/corpus`).

mod corpus;
mod dashboard;
mod debug;
mod fork_server;
mod fuzz;
mod inspect;
mod katib_cluster;
mod kubeflow;
mod kubeflow_kfp;
mod lifecycle;
mod run;
mod support;
mod tune;
mod validate;
