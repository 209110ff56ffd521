//! Steps get the machine they asked for (`limit:nvidia.com/gpu`, `limit:cpu`,
//! `limit:memory`), in `kale run` and across the parallel trials of `kale tune`. No
//! GPU is needed: `CUDA_VISIBLE_DEVICES` defines the pool, as in containers.

use std::path::Path;

use serde_json::Value;

use crate::support::{C, kale_with_python, succeed, write_notebook};

/// (device, start, end) of every trial's GPU step, from the trials' manifests.
fn gpu_intervals(dir: &Path, experiment: &str) -> Vec<(String, f64, f64)> {
    let out = succeed(
        kale_with_python()
            .args(["experiments", "show", experiment, "--json", "--dir"])
            .arg(dir),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let run_dir = t["run_dir"].as_str().unwrap();
            let manifest: Value = serde_json::from_str(
                &std::fs::read_to_string(Path::new(run_dir).join("manifest.json")).unwrap(),
            )
            .unwrap();
            let m = &manifest["metrics"];
            (
                m["device"].to_string(),
                m["t0"].as_f64().unwrap(),
                m["t1"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn gpu_notebook(dir: &Path) -> std::path::PathBuf {
    write_notebook(
        dir,
        "gpu.ipynb",
        &[
            C::Code(&["imports"], "import os, time"),
            C::Code(&["pipeline-parameters"], "x = 0.5"),
            C::Code(
                &["step:train", "limit:nvidia.com/gpu:1"],
                "visible = os.environ['CUDA_VISIBLE_DEVICES']\nassert ',' not in visible, visible\n\
                 device = int(visible)\nt0 = time.time()\ntime.sleep(1.5)\nt1 = time.time()\nscore = -(x - 0.3) ** 2",
            ),
            C::Code(
                &["pipeline-metrics"],
                "print(score)\nprint(device)\nprint(t0)\nprint(t1)",
            ),
        ],
        None,
    )
}

/// Tunes with `devices` as the GPU pool and a CPU budget of `cpus`; the stderr.
fn tune_gpus(dir: &Path, nb: &Path, devices: &str, name: &str, cpus: &str) -> String {
    let out = succeed(
        kale_with_python()
            .env("CUDA_VISIBLE_DEVICES", devices)
            .arg("tune")
            .arg(nb)
            .args([
                "--objective",
                "score",
                "--algorithm",
                "random",
                "--param",
                "x=double:0..1",
                "--max-trials",
                "8",
                "--parallel",
                "4",
                "--cpus",
                cpus,
                "--name",
                name,
            ])
            .current_dir(dir),
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The most intervals that overlap at any moment, and whether two overlapping ones
/// ever share a device.
fn overlaps(intervals: &[(String, f64, f64)]) -> (usize, bool) {
    let mut most = 0;
    let mut shared = false;
    for (i, a) in intervals.iter().enumerate() {
        let at_once: Vec<_> = intervals
            .iter()
            .filter(|b| b.1 <= a.1 && a.1 < b.2)
            .collect();
        most = most.max(at_once.len());
        for (j, b) in intervals.iter().enumerate() {
            if i != j && a.0 == b.0 && a.1 < b.2 && b.1 < a.2 {
                shared = true;
            }
        }
    }
    (most, shared)
}

#[test]
fn parallel_trials_hold_distinct_gpus_and_wait_for_free_ones() {
    let dir = tempfile::tempdir().unwrap();
    let nb = gpu_notebook(dir.path());

    // Two cores for four trials: the GPU steps do not wait for a share of them while
    // GPUs are free (a GPU step's threads are its own), and the header says nothing
    // limits the four.
    let stderr = tune_gpus(dir.path(), &nb, "0,1,2,3", "four", "2");
    assert!(stderr.contains(", 4 at once\n"), "{stderr}");
    let four = gpu_intervals(dir.path(), "four");
    assert_eq!(four.len(), 8);
    let (most, shared) = overlaps(&four);
    assert!(!shared, "two trials on one GPU at once: {four:?}");
    assert_eq!(most, 4, "four GPUs, four trials at once: {four:?}");
    let devices: std::collections::BTreeSet<_> = four.iter().map(|i| i.0.clone()).collect();
    assert_eq!(devices.len(), 4, "{four:?}");

    let stderr = tune_gpus(dir.path(), &nb, "0,1", "two", "8");
    assert!(
        stderr.contains(", 4 at once (at most 2 GPU steps at a time: 2 GPUs, 1 each)\n"),
        "{stderr}"
    );
    let two = gpu_intervals(dir.path(), "two");
    let (most, shared) = overlaps(&two);
    assert!(!shared, "{two:?}");
    assert!(
        most <= 2,
        "only two GPUs, {most} GPU steps at once: {two:?}"
    );
}

#[test]
fn more_gpus_than_the_machine_has_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "big.ipynb",
        &[
            C::Code(&["step:train", "limit:nvidia.com/gpu:2"], "x = 1"),
            C::Code(&["pipeline-metrics"], "print(x)"),
        ],
        None,
    );
    let out = kale_with_python()
        .env("CUDA_VISIBLE_DEVICES", "0")
        .arg("run")
        .arg(&nb)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("big.ipynb: cell 1: step `train` asks for 2 GPUs but this machine has 1 (CUDA_VISIBLE_DEVICES=0: 0)"),
        "{stderr}"
    );
    assert!(
        !dir.path().join(".kale/runs").exists()
            || std::fs::read_dir(dir.path().join(".kale/runs"))
                .unwrap()
                .next()
                .is_none()
    );
    let out = kale_with_python()
        .env("CUDA_VISIBLE_DEVICES", "0,1")
        .arg("run")
        .arg(&nb)
        .args(["--gpus", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GPU `3` is not among this machine's GPUs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn thread_metrics(doc: &Value) -> (i64, i64, i64) {
    let m = &doc["metrics"];
    (
        m["omp_a"].as_i64().unwrap(),
        m["omp_b"].as_i64().unwrap(),
        m["mkl_b"].as_i64().unwrap(),
    )
}

#[test]
fn steps_get_a_share_of_the_cores_as_their_thread_count_and_the_users_values_win() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "threads.ipynb",
        &[
            C::Code(&["imports"], "import os"),
            C::Code(&["step:a"], "omp_a = int(os.environ['OMP_NUM_THREADS'])"),
            C::Code(
                &["step:b", "limit:cpu:3"],
                "omp_b = int(os.environ['OMP_NUM_THREADS'])\nmkl_b = int(os.environ['MKL_NUM_THREADS'])",
            ),
            C::Code(
                &["pipeline-metrics"],
                "print(omp_a)\nprint(omp_b)\nprint(mkl_b)",
            ),
        ],
        None,
    );
    let run = |omp: Option<&str>| {
        let mut cmd = kale_with_python();
        cmd.arg("run")
            .arg(&nb)
            .args(["--json", "--cpus", "4", "--jobs", "2", "--no-cache"]);
        match omp {
            Some(v) => cmd.env("OMP_NUM_THREADS", v),
            None => cmd.env_remove("OMP_NUM_THREADS"),
        };
        cmd.env_remove("MKL_NUM_THREADS");
        let out = succeed(&mut cmd);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // Two steps may run at once on 4 cores: 2 threads each; `b` asked for 3.
    assert_eq!(thread_metrics(&run(None)), (2, 3, 3));
    // The user's own value wins; what they did not set is still sized.
    assert_eq!(thread_metrics(&run(Some("7"))), (7, 7, 3));
}

#[test]
fn a_forked_step_with_its_own_cpu_limit_resizes_the_blas_pool_it_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "blas.ipynb",
        &[
            C::Code(&["imports"], "import numpy as np\nimport threadpoolctl"),
            C::Code(
                &["step:one", "limit:cpu:1"],
                "blas = min(p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas')",
            ),
            C::Code(&["pipeline-metrics"], "print(blas)"),
        ],
        None,
    );
    let out = succeed(
        kale_with_python()
            .arg("run")
            .arg(&nb)
            .args(["--json", "--cpus", "4", "--jobs", "1"])
            .env_remove("OPENBLAS_NUM_THREADS")
            .env_remove("OMP_NUM_THREADS"),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["metrics"]["blas"], serde_json::json!(1), "{doc:#}");
}

#[test]
fn a_step_past_its_memory_limit_fails_with_the_limit_while_other_trials_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "memory.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "mb = 10"),
            C::Code(
                &["step:train", "limit:memory:300Mi"],
                "block = bytearray(mb * 1024 * 1024)\nscore = -mb",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let out = kale_with_python()
        .arg("run")
        .arg(&nb)
        .args(["-p", "mb=600"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("step `train` exceeded its memory limit (300Mi)"),
        "{stderr}"
    );
    assert!(stderr.contains("cell 2, line 1"), "{stderr}");

    let out = succeed(kale_with_python().arg("tune").arg(&nb).args([
        "--objective",
        "score",
        "--algorithm",
        "grid",
        "--param",
        "mb=discrete:10,600,20",
        "--parallel",
        "2",
        "--json",
    ]));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["trials"]["succeeded"], serde_json::json!(2), "{doc:#}");
    assert_eq!(doc["trials"]["failed"], serde_json::json!(1), "{doc:#}");
    assert_eq!(doc["best"]["params"]["mb"], serde_json::json!(10));
}
