//! kale turns an annotated Jupyter notebook into a pipeline: steps in a DAG, with the
//! data each step needs found by static analysis.
//!
//! Data flows one way through the modules:
//! [`notebook`] (cells, tags, metadata) → [`analysis`] (what each block of Python
//! reads and binds) → [`pipeline`] (the DAG and who provides which variable).
//!
//! ```no_run
//! let (pipeline, diagnostics) = kale::pipeline::load(std::path::Path::new("notebook.ipynb"));
//! for d in diagnostics.iter() {
//!     eprintln!("{}", d.render(std::path::Path::new("notebook.ipynb")));
//! }
//! if let Some(p) = pipeline {
//!     for step in &p.steps {
//!         println!("{} reads {:?}", step.name, step.inputs.keys().collect::<Vec<_>>());
//!     }
//! }
//! ```

pub mod analysis;
pub mod codegen;
pub mod dashboard;
pub mod diagnostics;
pub mod error;
pub mod events;
pub mod exec;
pub mod experiments;
pub mod format;
pub mod inspect;
pub mod kubeflow;
pub mod layout;
pub mod machine;
pub mod names;
pub mod notebook;
pub mod output;
pub mod pipeline;
pub mod query;
pub mod render;
pub mod run;
pub mod snapshot;
pub mod store;
pub mod tune;
pub mod validate;

pub use error::{Error, ErrorKind, Result};
