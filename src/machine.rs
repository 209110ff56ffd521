//! What runs a notebook's steps on this machine, as the user chose it: the Python
//! interpreter (`--python`, `KALE_PYTHON`, else found) and the GPUs and cores
//! (`--gpus`, `--cpus`, ...). `kale run` and a local `kale tune` start from these.

use std::path::Path;
use std::sync::Arc;

use crate::exec::{Interpreter, python, resources};
use python::Source;

/// The interpreter that runs the steps, with where it came from: what `kale run` and
/// `kale tune` print in their headers and `--json` documents.
#[derive(Clone, Debug)]
pub struct StepPython {
    pub interpreter: Interpreter,
    pub source: Source,
}

impl StepPython {
    /// `flag` (`--python`), else as [`python::choose`] goes on; an interpreter that cannot run
    /// the steps is an error that says where it came from.
    pub fn find(flag: Option<&Path>) -> crate::Result<StepPython> {
        let choice = python::choose(flag);
        let interpreter = python::resolve(&choice.command).map_err(|e| {
            crate::Error::from(e)
                .with_hint(format!("this Python came {}", choice.source.describe()))
        })?;
        Ok(StepPython {
            interpreter,
            source: choice.source,
        })
    }

    /// `python /usr/bin/python3.12 (3.12, from KALE_PYTHON)`.
    pub fn header(&self) -> String {
        let i = &self.interpreter;
        format!(
            "python {} ({}.{}, {})",
            i.executable.display(),
            i.version.0,
            i.version.1,
            self.source.describe()
        )
    }

    /// The `python` object of the `--json` documents.
    pub fn to_json(&self) -> serde_json::Value {
        let i = &self.interpreter;
        serde_json::json!({
            "executable": i.executable,
            "version": format!("{}.{}", i.version.0, i.version.1),
            "chosen_by": self.source.as_str(),
        })
    }

    /// For a step that failed with `ModuleNotFoundError`: the usual cause is running the
    /// steps with a Python that is not the notebook's environment, so say which one ran
    /// them and how to pick another.
    pub fn module_not_found_hint(&self) -> String {
        let i = &self.interpreter;
        format!(
            "hint: the steps ran under {} ({}); install the module there (`{} -m pip install ...`), or run them with the notebook's environment: --python PATH or KALE_PYTHON=PATH",
            i.executable.display(),
            self.source.describe(),
            i.executable.display()
        )
    }
}

/// What the user said about this machine's GPUs and cores (`--gpus`, `--cpus`,
/// `--hide-gpus`, `--ignore-gpu-limits`).
#[derive(Clone, Debug, Default)]
pub struct MachineSettings {
    pub gpus: Option<Vec<String>>,
    pub cpus: Option<f64>,
    pub hide_gpus: bool,
    pub ignore_gpu_limits: bool,
}

impl MachineSettings {
    /// [`resources::pool_for`] with these settings, its error located in `notebook`.
    pub fn pool(
        &self,
        notebook: &std::path::Path,
        pipeline: &crate::pipeline::Pipeline,
        concurrent_runs: usize,
        jobs_per_run: usize,
    ) -> crate::Result<Arc<resources::ResourcePool>> {
        resources::pool_for(
            pipeline,
            self.gpus.as_deref(),
            self.cpus,
            (self.hide_gpus, self.ignore_gpu_limits),
            concurrent_runs,
            jobs_per_run,
        )
        .map_err(|e| e.located(notebook))
    }
}
