//! Every notebook of the shared Kale corpus goes through `kale inspect`; where Kale's
//! own expected data flow is recorded, kale's is compared with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{corpus_dir, kale, strings};

fn corpus_notebooks() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "ipynb") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&corpus_dir(), &mut out);
    out
}

#[test]
fn every_corpus_notebook_inspects_or_fails_with_located_errors() {
    let notebooks = corpus_notebooks();
    assert!(
        notebooks.len() >= 40,
        "corpus not found at {}",
        corpus_dir().display()
    );
    let mut ok = 0;
    let mut failed = Vec::new();
    for nb in &notebooks {
        let out = kale()
            .arg("inspect")
            .arg(nb)
            .arg("--json")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", nb.display());
        match out.status.code() {
            Some(0) => {
                let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert!(!doc["steps"].as_array().unwrap().is_empty());
                ok += 1;
            }
            Some(2) => {
                // Every error names the notebook, and a cell unless it is about the
                // notebook as a whole.
                for line in stderr.lines().filter(|l| l.starts_with("error:")) {
                    assert!(line.contains(&nb.display().to_string()), "{line}");
                    let whole_notebook =
                        line.contains("no pipeline steps") || line.contains("kubeflow_notebook");
                    assert!(
                        whole_notebook || line.contains(": cell "),
                        "error without a cell: {line}"
                    );
                }
                failed.push((nb.clone(), stderr.to_string()));
            }
            other => panic!("{}: unexpected exit {other:?}: {stderr}", nb.display()),
        }
    }
    // The notebooks that cannot become pipelines: read_data.ipynb (no tags at all, in
    // three snapshots), Kale 2.3's composition notebooks (`notebook:` cells), and
    // notebooks whose code really reads names no step provides (see EXPECTED below).
    for (nb, stderr) in &failed {
        eprintln!("--- {}\n{stderr}", nb.display());
    }
    assert!(
        ok >= 35,
        "only {ok} of {} corpus notebooks inspect",
        notebooks.len()
    );
}

/// Kale's golden DSL files → the notebook they were generated from.
const GOLDEN_TO_NOTEBOOK: &[(&str, &str)] = &[
    (
        "kubeflow-kale_kale@3e6b711_master-kfp-v2/backend/kale/tests/assets/kfp_dsl/iris.py",
        "kubeflow-kale_kale@3e6b711_master-kfp-v2/examples/serving/sklearn/iris.ipynb",
    ),
    (
        "pypi_kubeflow-kale-2.3.0/kale/tests/assets/kfp_dsl/iris.py",
        "pypi_kubeflow-kale-2.3.0/examples/iris/sklearn/iris.ipynb",
    ),
    (
        "kubeflow-kale_kale@3e6b711_master-kfp-v2/backend/kale/tests/assets/kfp_dsl/pipeline_parameters_and_metrics.py",
        "kubeflow-kale_kale@3e6b711_master-kfp-v2/backend/kale/tests/assets/notebooks/pipeline_parameters_and_metrics.ipynb",
    ),
    (
        "kubeflow-kale_kale@bda9d29_v0.7-kfp-v1/backend/kale/tests/assets/kfp_dsl/pipeline_parameters_and_metrics.py",
        "kubeflow-kale_kale@bda9d29_v0.7-kfp-v1/backend/kale/tests/assets/notebooks/pipeline_parameters_and_metrics.ipynb",
    ),
    (
        "pypi_kubeflow-kale-2.3.0/kale/tests/assets/kfp_dsl/pipeline_parameters_and_metrics.py",
        "pypi_kubeflow-kale-2.3.0/kale/tests/assets/notebooks/pipeline_parameters_and_metrics.ipynb",
    ),
    (
        "kubeflow-kale_kale@3e6b711_master-kfp-v2/backend/kale/tests/assets/kfp_dsl/titanic.py",
        "kubeflow-kale_kale@3e6b711_master-kfp-v2/examples/titanic-ml-dataset/titanic_dataset_ml.ipynb",
    ),
    (
        "kubeflow-kale_kale@bda9d29_v0.7-kfp-v1/backend/kale/tests/assets/kfp_dsl/titanic.py",
        "kubeflow-kale_kale@bda9d29_v0.7-kfp-v1/examples/titanic-ml-dataset/titanic_dataset_ml.ipynb",
    ),
    (
        "pypi_kubeflow-kale-2.3.0/kale/tests/assets/kfp_dsl/mount_pvc.py",
        "pypi_kubeflow-kale-2.3.0/kale/tests/assets/notebooks/mount_pvc.ipynb",
    ),
    (
        "pypi_kubeflow-kale-2.3.0/kale/tests/assets/kfp_dsl/mount_pvc_env_var.py",
        "pypi_kubeflow-kale-2.3.0/kale/tests/assets/notebooks/mount_pvc_env_var.ipynb",
    ),
];
// Not compared: `pipeline_parameters.py` and `simple_data_passing.py` were generated from
// Kale's Python SDK scripts, not from notebooks.

/// Differences from Kale that are intended, each with its reason. Key: (golden, step,
/// "inputs"|"outputs"), value: (kale's list, why).
fn intended_differences()
-> BTreeMap<(&'static str, &'static str, &'static str), (Vec<&'static str>, &'static str)> {
    BTreeMap::new()
}

#[test]
fn data_flow_matches_kale_where_kale_is_right() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(corpus_dir().join("kale-tests/EXPECTED_DATAFLOW.json")).unwrap(),
    )
    .unwrap();
    let intended = intended_differences();
    for (golden, notebook) in GOLDEN_TO_NOTEBOOK {
        let path = corpus_dir().join("kale-tests").join(notebook);
        let out = kale()
            .arg("inspect")
            .arg(&path)
            .arg("--json")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if golden.ends_with("mount_pvc.py") || golden.ends_with("mount_pvc_env_var.py") {
            // Kale's golden encodes a broken pipeline: `train` reads `data`, which no
            // step provides (Kale drops it silently and the step fails with NameError).
            // kale reports it instead.
            assert_eq!(out.status.code(), Some(2), "{golden}: {stderr}");
            assert!(stderr.contains("reads `"), "{golden}: {stderr}");
            continue;
        }
        assert!(out.status.success(), "{notebook}: {stderr}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let metrics = strings(&doc["metrics"]);
        let golden_steps = expected[*golden].as_object().unwrap();
        for (step_name, io) in golden_steps {
            let ours = crate::support::step(&doc, step_name);
            for key in ["inputs", "outputs"] {
                let mut kale_list = strings(&io[key]);
                kale_list.sort();
                let mut our_list = strings(&ours[key]);
                if key == "outputs" {
                    // kale lists metric variables among the outputs of the step that
                    // reports them (the contract says so); Kale attaches them separately.
                    our_list.retain(|v| !metrics.contains(v));
                }
                if let Some((theirs, _why)) = intended.get(&(*golden, step_name.as_str(), key)) {
                    assert_eq!(
                        kale_list, *theirs,
                        "stale intended difference for {golden} {step_name} {key}"
                    );
                    continue;
                }
                assert_eq!(our_list, kale_list, "{golden}: step {step_name} {key}");
            }
        }
    }
}

/// Every notebook of the corpus goes through `kale validate`, `kale compile --target
/// kfp` and `kale compile --target katib` (with the notebook's own settings, then with
/// one of its metrics as the objective): none panics, each ends 0 or 2, and every
/// refusal has a hint.
#[test]
fn every_corpus_notebook_validates_and_compiles_without_a_panic() {
    let notebooks = corpus_notebooks();
    assert!(notebooks.len() >= 40, "corpus not found");
    let dir = tempfile::tempdir().unwrap();
    let mut compiled = 0;
    for (i, nb) in notebooks.iter().enumerate() {
        let out = dir.path().join(format!("{i}.yaml"));
        let metric = {
            let o = kale()
                .arg("inspect")
                .arg(nb)
                .arg("--json")
                .output()
                .unwrap();
            serde_json::from_slice::<Value>(&o.stdout)
                .ok()
                .and_then(|d| d["metrics"][0]["name"].as_str().map(str::to_string))
                .unwrap_or_else(|| "accuracy".into())
        };
        let runs: Vec<(&str, Vec<String>)> = vec![
            ("validate", vec![]),
            (
                "compile",
                vec![
                    "--target".into(),
                    "kfp".into(),
                    "-o".into(),
                    out.display().to_string(),
                ],
            ),
            (
                "compile",
                vec![
                    "--target".into(),
                    "katib".into(),
                    "-o".into(),
                    out.display().to_string(),
                ],
            ),
            (
                "compile",
                vec![
                    "--target".into(),
                    "katib".into(),
                    "--objective".into(),
                    metric.clone(),
                    "-o".into(),
                    out.display().to_string(),
                ],
            ),
        ];
        let mut valid = false;
        for (command, args) in &runs {
            let o = kale()
                .arg(command)
                .arg(nb)
                .args(args)
                .env("KALE_PYTHON", crate::support::python())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            let what = format!("{} {command} {args:?}", nb.display());
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
            match o.status.code() {
                Some(0) => {
                    if *command == "validate" {
                        valid = true;
                    }
                    if args.iter().any(|a| a == "kfp") {
                        compiled += 1;
                    }
                }
                Some(2) => {
                    // A notebook that validates compiles to KFP.
                    assert!(
                        !(valid && args.iter().any(|a| a == "kfp")),
                        "{what}: validates but does not compile: {stderr}"
                    );
                    crate::errors::assert_every_error_has_a_hint(&stderr);
                }
                other => panic!("{what}: exit {other:?}: {stderr}"),
            }
        }
    }
    assert!(compiled >= 35, "only {compiled} corpus notebooks compiled");
}
