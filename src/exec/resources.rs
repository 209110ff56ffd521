//! What a step may use on this machine: GPUs of its own, a share of the CPU cores,
//! a memory ceiling, from its `limit:` tags (`limit:nvidia.com/gpu:1`,
//! `limit:cpu:2`, `limit:memory:4Gi`).
//!
//! One [`ResourcePool`] serves a whole `kale run` or `kale tune` (all its trials):
//! a step waits for its GPUs and its CPU share before it starts, so parallel trials
//! never land on the same GPU and never start more BLAS threads than there are cores.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::notebook::StepConfig;

/// The GPU resource names Kubernetes uses, as Kale's tags write them.
const GPU_RESOURCES: &[&str] = &["nvidia.com/gpu", "amd.com/gpu", "gpu"];

/// Thread-count variables of the usual numeric libraries (OpenMP, MKL, OpenBLAS,
/// numexpr, Accelerate, BLIS). A step gets them set to its CPU share unless the
/// user set them.
pub const THREAD_VARIABLES: &[&str] = &[
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
];

/// What one step asked for.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StepResources {
    pub gpus: u32,
    /// Cores (`limit:cpu:500m` is 0.5).
    pub cpus: Option<f64>,
    /// Bytes.
    pub memory: Option<u64>,
    /// The memory limit as the user wrote it (`4Gi`), for messages.
    pub memory_text: Option<String>,
}

impl StepResources {
    pub fn of(config: &StepConfig) -> Result<StepResources, String> {
        Self::from_limits(&config.limits)
    }

    pub fn from_limits(limits: &BTreeMap<String, String>) -> Result<StepResources, String> {
        let mut r = StepResources::default();
        for (name, value) in limits {
            if GPU_RESOURCES.contains(&name.as_str()) {
                r.gpus = value.parse().map_err(|_| {
                    format!("`limit:{name}:{value}`: the number of GPUs must be a whole number")
                })?;
            } else if name == "cpu" {
                let cpus = parse_cpu(value).ok_or_else(|| {
                    format!("`limit:cpu:{value}`: write cores as `2`, `1.5` or `500m`")
                })?;
                r.cpus = Some(cpus);
            } else if name == "memory" {
                r.memory = Some(parse_memory(value).ok_or_else(|| {
                    format!("`limit:memory:{value}`: write a size such as `4Gi`, `512Mi` or `2G`")
                })?);
                r.memory_text = Some(value.clone());
            }
        }
        Ok(r)
    }

    /// Whether the step must be spawned rather than forked from the fork server:
    /// CUDA must not be initialised in a forked process, and an address-space limit
    /// is only meaningful from a fresh interpreter.
    pub fn needs_own_process(&self) -> bool {
        self.gpus > 0 || self.memory.is_some()
    }
}

/// Kubernetes CPU quantity: `2`, `1.5`, `500m`.
pub fn parse_cpu(text: &str) -> Option<f64> {
    let value = match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => text.parse::<f64>().ok()?,
    };
    (value.is_finite() && value > 0.0).then_some(value)
}

/// Kubernetes memory quantity: `4Gi`, `512Mi`, `2G`, `1000`, `1e9`.
pub fn parse_memory(text: &str) -> Option<u64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, scale) = SUFFIXES
        .iter()
        .find_map(|(s, f)| text.strip_suffix(s).map(|n| (n, *f)))
        .unwrap_or((text, 1.0));
    let value = number.parse::<f64>().ok()? * scale;
    (value.is_finite() && value >= 1.0).then_some(value as u64)
}

/// The GPUs steps may use, and where that list came from (for messages).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuPool {
    pub devices: Vec<String>,
    pub source: String,
}

impl GpuPool {
    /// `CUDA_VISIBLE_DEVICES` when it is set (also where kale cannot see GPUs
    /// itself: containers and tests restrict it that way), else the GPUs
    /// `nvidia-smi -L` lists; `restrict` (`--gpus 0,2`) keeps only those.
    pub fn discover(restrict: Option<&[String]>) -> Result<GpuPool, String> {
        let mut pool = match std::env::var("CUDA_VISIBLE_DEVICES") {
            Ok(list) => GpuPool {
                devices: list
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty() && !d.starts_with('-'))
                    .map(String::from)
                    .collect(),
                source: format!("CUDA_VISIBLE_DEVICES={list}"),
            },
            Err(_) => GpuPool {
                devices: nvidia_smi_devices(),
                source: "nvidia-smi -L".into(),
            },
        };
        if let Some(wanted) = restrict {
            for id in wanted {
                if !pool.devices.contains(id) {
                    return Err(format!(
                        "--gpus {}: GPU `{id}` is not among this machine's GPUs ({}: {})",
                        wanted.join(","),
                        pool.source,
                        if pool.devices.is_empty() {
                            "none".to_string()
                        } else {
                            pool.devices.join(",")
                        }
                    ));
                }
            }
            pool.devices.retain(|d| wanted.contains(d));
            pool.source = format!("--gpus {}", wanted.join(","));
        }
        Ok(pool)
    }
}

fn nvidia_smi_devices() -> Vec<String> {
    let Ok(out) = std::process::Command::new("nvidia-smi").arg("-L").output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("GPU ")?
                .split(':')
                .next()?
                .trim()
                .parse::<u32>()
                .ok()
        })
        .map(|n| n.to_string())
        .collect()
}

/// How a run or tune shares the machine between its steps.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub gpus: GpuPool,
    /// Cores the steps may use together (default: all of this machine's).
    pub cpus: f64,
    /// Steps that may run at once (jobs × parallel trials): each step without a CPU
    /// limit gets an even share of the cores among them.
    pub concurrent_steps: usize,
    /// Steps without a GPU limit see no GPU (`CUDA_VISIBLE_DEVICES=""`).
    pub hide_gpus: bool,
    /// GPU limits are for the cluster: run such steps here without GPUs of their own.
    pub ignore_gpu_limits: bool,
}

impl PoolSettings {
    pub fn machine_cores() -> f64 {
        std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0)
    }
}

/// Why a pipeline's steps cannot run on this machine.
#[derive(Debug)]
pub struct ResourceError {
    /// The step and its first cell, when one step is the reason.
    pub step: Option<(String, usize)>,
    pub message: String,
}

impl ResourceError {
    /// The error located in `notebook`: the `limit:` tags are the notebook's.
    pub fn located(self, notebook: &std::path::Path) -> crate::Error {
        match self.step {
            Some((_, cell)) => crate::Error::bad_input(format!(
                "{}: cell {cell}: {}",
                notebook.display(),
                self.message
            )),
            None => crate::Error::bad_input(self.message),
        }
    }
}

/// The pool for a pipeline's steps, with `limit:` tags checked against it: the
/// first step that cannot run here (a malformed limit, more GPUs than the machine
/// has) is the error.
pub fn pool_for(
    pipeline: &crate::pipeline::Pipeline,
    gpus: Option<&[String]>,
    cpus: Option<f64>,
    (hide_gpus, ignore_gpu_limits): (bool, bool),
    concurrent_runs: usize,
    jobs_per_run: usize,
) -> Result<Arc<ResourcePool>, ResourceError> {
    let gpus = GpuPool::discover(gpus).map_err(|message| ResourceError {
        step: None,
        message,
    })?;
    let pool = ResourcePool::new(PoolSettings {
        gpus,
        cpus: cpus.unwrap_or_else(PoolSettings::machine_cores),
        concurrent_steps: concurrent_runs.max(1) * jobs_per_run.min(dag_width(pipeline)).max(1),
        hide_gpus,
        ignore_gpu_limits,
    });
    for step in &pipeline.steps {
        let located = |message| ResourceError {
            step: Some((step.name.clone(), step.cells.first().copied().unwrap_or(0))),
            message,
        };
        let asked = pool.effective(StepResources::of(&step.config).map_err(located)?);
        pool.check(&step.name, &asked).map_err(located)?;
    }
    Ok(pool)
}

/// The most steps of the pipeline that can run at once: the largest number of steps
/// at the same depth of the DAG.
fn dag_width(pipeline: &crate::pipeline::Pipeline) -> usize {
    let mut depth: std::collections::HashMap<&str, usize> = Default::default();
    let mut per_depth: std::collections::HashMap<usize, usize> = Default::default();
    for step in &pipeline.steps {
        let d = step
            .depends_on
            .iter()
            .chain(step.inputs.values())
            .filter_map(|p| depth.get(p.as_str()))
            .max()
            .map_or(0, |d| d + 1);
        depth.insert(&step.name, d);
        *per_depth.entry(d).or_default() += 1;
    }
    per_depth.values().copied().max().unwrap_or(1)
}

#[derive(Debug)]
struct PoolState {
    gpu_busy: Vec<bool>,
    cpus_used: f64,
}

/// GPUs and CPU share, handed out to steps as they start.
#[derive(Debug)]
pub struct ResourcePool {
    settings: PoolSettings,
    state: Mutex<PoolState>,
    changed: tokio::sync::Notify,
}

/// What a running step holds; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<ResourcePool>,
    gpus: Vec<usize>,
    cpus: f64,
    threads: usize,
}

impl ResourcePool {
    pub fn new(settings: PoolSettings) -> Arc<ResourcePool> {
        let gpu_busy = vec![false; settings.gpus.devices.len()];
        Arc::new(ResourcePool {
            settings,
            state: Mutex::new(PoolState {
                gpu_busy,
                cpus_used: 0.0,
            }),
            changed: tokio::sync::Notify::new(),
        })
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// What keeps fewer than `trials` trials' steps running at once, when something
    /// does: the GPU pool for steps that hold `gpus_each` GPUs, the CPU budget for the
    /// steps that share it (GPU steps without a CPU limit do not).
    pub fn limit_on(&self, trials: usize, gpus_each: u32, has_cpu_steps: bool) -> Option<String> {
        let mut limits = Vec::new();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if gpus_each > 0 {
            let have = self.settings.gpus.devices.len();
            let fit = have / gpus_each as usize;
            if fit < trials {
                limits.push(format!(
                    "{fit} GPU step{} at a time: {have} GPU{}, {gpus_each} each",
                    plural(fit),
                    plural(have)
                ));
            }
        }
        if has_cpu_steps {
            let fit =
                ((self.settings.cpus / self.default_threads() as f64).floor() as usize).max(1);
            if fit < trials {
                let cores = self.settings.cpus;
                limits.push(format!(
                    "{fit} CPU step{} at a time: the CPU budget is {cores} core{} (--cpus)",
                    plural(fit),
                    plural(cores as usize)
                ));
            }
        }
        (!limits.is_empty()).then(|| limits.join("; "))
    }

    /// Threads a step without a CPU limit gets: an even share of the cores among the
    /// steps that may run at once, at least one.
    pub fn default_threads(&self) -> usize {
        let share = self.settings.cpus / self.settings.concurrent_steps.max(1) as f64;
        (share.floor() as usize).max(1)
    }

    /// What a step gets here of what it asked for.
    pub fn effective(&self, mut asked: StepResources) -> StepResources {
        if self.settings.ignore_gpu_limits {
            asked.gpus = 0;
        }
        asked
    }

    /// A step that cannot ever run here, said before anything starts.
    pub fn check(&self, step: &str, r: &StepResources) -> Result<(), String> {
        let have = self.settings.gpus.devices.len();
        if r.gpus as usize > have {
            return Err(format!(
                "step `{step}` asks for {} GPU{} but this machine has {} ({}: {})\n  hint: run it where it has them, or pass --ignore-gpu-limits to run it here without GPUs of its own (the limit still goes to Kubeflow)",
                r.gpus,
                if r.gpus == 1 { "" } else { "s" },
                have,
                self.settings.gpus.source,
                if have == 0 {
                    "none".to_string()
                } else {
                    self.settings.gpus.devices.join(",")
                }
            ));
        }
        Ok(())
    }

    /// Waits until the step's GPUs and CPU share are free, then takes them.
    pub async fn acquire(self: &Arc<Self>, r: &StepResources) -> Lease {
        let cores = (self.settings.cpus.floor() as usize).max(1);
        let threads = match r.cpus {
            Some(c) => (c.ceil() as usize).clamp(1, cores),
            None => self.default_threads(),
        };
        // Never more than the whole budget, or the step could never start. A step
        // that holds GPUs and asked for no cores spends its time waiting on them: its
        // threads are its own, not a share of the CPU budget, or GPUs would sit idle
        // behind CPU-bound steps (4 GPUs, `--parallel 4`, 2 cores).
        let cpus = match (r.cpus, r.gpus > 0 && !self.settings.ignore_gpu_limits) {
            (None, true) => 0.0,
            (asked, _) => asked.unwrap_or(threads as f64).min(self.settings.cpus),
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state.lock().unwrap();
                let free: Vec<usize> = state
                    .gpu_busy
                    .iter()
                    .enumerate()
                    .filter(|(_, busy)| !**busy)
                    .map(|(i, _)| i)
                    .collect();
                let cpu_fits = cpus == 0.0
                    || state.cpus_used == 0.0
                    || state.cpus_used + cpus <= self.settings.cpus + 1e-9;
                if free.len() >= r.gpus as usize && cpu_fits {
                    let gpus: Vec<usize> = free.into_iter().take(r.gpus as usize).collect();
                    for &g in &gpus {
                        state.gpu_busy[g] = true;
                    }
                    state.cpus_used += cpus;
                    return Lease {
                        pool: self.clone(),
                        gpus,
                        cpus,
                        threads,
                    };
                }
            }
            notified.await;
        }
    }
}

impl Lease {
    /// The device ids of the GPUs this step holds.
    pub fn gpu_ids(&self) -> Vec<String> {
        self.gpus
            .iter()
            .map(|&g| self.pool.settings.gpus.devices[g].clone())
            .collect()
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Environment for the step: its GPUs and thread counts. Variables the user set
    /// in kale's own environment are left alone: their values win.
    pub fn environment(&self, asked_gpus: bool) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if asked_gpus {
            env.push(("CUDA_VISIBLE_DEVICES".into(), self.gpu_ids().join(",")));
        } else if self.pool.settings.hide_gpus {
            env.push(("CUDA_VISIBLE_DEVICES".into(), String::new()));
        }
        env.extend(thread_environment(self.threads));
        env
    }
}

/// The thread-count variables set to `threads`, except those the user set.
pub fn thread_environment(threads: usize) -> Vec<(String, String)> {
    THREAD_VARIABLES
        .iter()
        .filter(|v| std::env::var_os(v).is_none())
        .map(|v| (v.to_string(), threads.to_string()))
        .collect()
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock().unwrap();
        for &g in &self.gpus {
            state.gpu_busy[g] = false;
        }
        state.cpus_used = (state.cpus_used - self.cpus).max(0.0);
        drop(state);
        self.pool.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(gpus: &[&str], cpus: f64, concurrent: usize) -> Arc<ResourcePool> {
        ResourcePool::new(PoolSettings {
            gpus: GpuPool {
                devices: gpus.iter().map(|s| s.to_string()).collect(),
                source: "test".into(),
            },
            cpus,
            concurrent_steps: concurrent,
            hide_gpus: false,
            ignore_gpu_limits: false,
        })
    }

    #[test]
    fn quantities_as_kubernetes_writes_them() {
        assert_eq!(parse_cpu("500m"), Some(0.5));
        assert_eq!(parse_cpu("2"), Some(2.0));
        assert_eq!(parse_cpu("0"), None);
        assert_eq!(parse_memory("4Gi"), Some(4 << 30));
        assert_eq!(parse_memory("512Mi"), Some(512 << 20));
        assert_eq!(parse_memory("2G"), Some(2_000_000_000));
        assert_eq!(parse_memory("lots"), None);
        let limits: BTreeMap<String, String> = [
            ("nvidia.com/gpu".to_string(), "2".to_string()),
            ("memory".into(), "1Gi".into()),
        ]
        .into();
        let r = StepResources::from_limits(&limits).unwrap();
        assert_eq!((r.gpus, r.memory), (2, Some(1 << 30)));
        assert!(r.needs_own_process());
        let bad: BTreeMap<String, String> = [("cpu".to_string(), "x".to_string())].into();
        assert!(
            StepResources::from_limits(&bad)
                .unwrap_err()
                .contains("500m")
        );
    }

    #[tokio::test]
    async fn gpus_are_exclusive_and_waited_for() {
        let p = pool(&["3", "5"], 8.0, 4);
        let one = StepResources {
            gpus: 1,
            ..Default::default()
        };
        let a = p.acquire(&one).await;
        let b = p.acquire(&one).await;
        assert_ne!(a.gpu_ids(), b.gpu_ids());
        let waiting = {
            let p = p.clone();
            let one = one.clone();
            tokio::spawn(async move { p.acquire(&one).await.gpu_ids() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a third GPU step must wait");
        let freed = a.gpu_ids();
        drop(a);
        assert_eq!(waiting.await.unwrap(), freed);
        assert!(
            p.check(
                "train",
                &StepResources {
                    gpus: 3,
                    ..Default::default()
                }
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn cpu_shares_never_exceed_the_cores() {
        let p = pool(&[], 2.0, 4);
        assert_eq!(p.default_threads(), 1);
        let plain = StepResources::default();
        let a = p.acquire(&plain).await;
        let _b = p.acquire(&plain).await;
        let third = {
            let p = p.clone();
            tokio::spawn(async move { p.acquire(&StepResources::default()).await.threads() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !third.is_finished(),
            "two cores, two one-thread steps running"
        );
        drop(a);
        assert_eq!(third.await.unwrap(), 1);
        // A limit above the budget still runs, alone.
        let big = StepResources {
            cpus: Some(16.0),
            ..Default::default()
        };
        let p = pool(&[], 2.0, 1);
        let lease = p.acquire(&big).await;
        assert_eq!(lease.threads(), 2);
    }

    /// 4 GPUs, 4 parallel trials, 2 cores: the GPU steps all start, each with its own
    /// GPU, whatever the CPU-bound steps hold; the CPU steps still share the 2 cores.
    #[tokio::test]
    async fn gpu_steps_do_not_wait_for_the_cpu_budget() {
        let p = pool(&["0", "1", "2", "3"], 2.0, 4);
        let gpu = StepResources {
            gpus: 1,
            ..Default::default()
        };
        let cpu_a = p.acquire(&StepResources::default()).await;
        let cpu_b = p.acquire(&StepResources::default()).await;
        let mut leases = Vec::new();
        for _ in 0..4 {
            let lease =
                tokio::time::timeout(std::time::Duration::from_millis(500), p.acquire(&gpu))
                    .await
                    .expect("a GPU step must not wait while GPUs are free");
            assert_eq!(lease.threads(), 1);
            leases.push(lease);
        }
        let mut held: Vec<String> = leases.iter().flat_map(|l| l.gpu_ids()).collect();
        held.sort();
        assert_eq!(held, ["0", "1", "2", "3"]);
        // A third CPU step still waits for a core.
        let third = {
            let p = p.clone();
            tokio::spawn(async move { p.acquire(&StepResources::default()).await.threads() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!third.is_finished());
        drop(cpu_a);
        assert_eq!(third.await.unwrap(), 1);
        drop(cpu_b);
        // A GPU step that asks for cores has them counted.
        let asked = StepResources {
            gpus: 1,
            cpus: Some(2.0),
            ..Default::default()
        };
        drop(leases);
        let _busy = p.acquire(&StepResources::default()).await;
        let waiting = {
            let p = p.clone();
            tokio::spawn(async move { p.acquire(&asked).await.threads() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
    }

    #[test]
    fn what_limits_the_parallelism_is_said() {
        let p = pool(&["0", "1", "2", "3"], 2.0, 4);
        assert_eq!(p.limit_on(4, 1, false), None);
        assert_eq!(
            p.limit_on(4, 1, true).as_deref(),
            Some("2 CPU steps at a time: the CPU budget is 2 cores (--cpus)")
        );
        let p = pool(&["0", "1"], 8.0, 4);
        assert_eq!(
            p.limit_on(4, 1, true).as_deref(),
            Some("2 GPU steps at a time: 2 GPUs, 1 each")
        );
        assert_eq!(p.limit_on(2, 1, true), None);
    }
}
