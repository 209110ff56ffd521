//! The Kubeflow Pipelines v2 IR (`PipelineSpec` YAML, schema 2.1.0) for a pipeline.
//!
//! One component per step. Each container runs the same step program as `kale run`
//! (from [`codegen::step_program`]) through a small standard-library bootstrap
//! (`kfp_bootstrap.py`), so the image needs Python and the notebook's libraries, not
//! kale. Choices that matter on a cluster:
//!
//! - The runtime and the bootstrap travel once per pipeline, not once per step: a first
//!   task, [`RUNTIME_TASK`], unpacks them (zlib + base64 in its arguments) into an
//!   artifact every step reads. Each step's command carries the runtime's digest
//!   ([`RuntimeBundle::id`]), so a step's KFP cache key changes when the runtime's text
//!   changes and only then: neither a kale upgrade that leaves the runtime alone nor a
//!   different compressor output invalidates the steps cached on a cluster.
//! - The `imports` and `functions` cells, which every step program runs first, travel
//!   once too: the runtime task unpacks them beside the runtime ([`SharedCells`]), and
//!   each step's program holds one placeholder line naming their digest, which the
//!   bootstrap replaces with them. The program that runs is the one `kale run` runs,
//!   line for line, and a step's KFP cache key still changes when those cells do.
//! - Only the variables some later step reads become output artifacts; every one is
//!   listed in the executor output file, which is where `kfp.local` (and its
//!   `DockerRunner`) takes outputs from.
//! - A step receives only the pipeline parameters it uses, and the program text does not
//!   contain their values (they arrive as component inputs). KFP's cache key is the
//!   component plus its input values, so steps that do not depend on a tuned parameter
//!   are reused across Katib trials.
//! - Data travels as KFP artifacts: each output variable is an artifact directory
//!   holding `<var>.<ext>`, so the file extension that tells the runtime how to load
//!   it survives the trip through object storage.
//! - `prev:` edges stay in `dependentTasks` even when no data flows along them.
//! - A step that reports metrics has a `system.Metrics` output named
//!   [`METRICS_ARTIFACT`]; the Katib trial driver reads it back.
//!
//! Kubernetes-only settings (pod labels and annotations, secrets as environment
//! variables, PVC mounts) go into the second YAML document, the `PlatformSpec`, as the
//! KFP SDK writes them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::analysis::PipelineValue;
use crate::codegen;
use crate::pipeline::{Pipeline, Step};

use super::packages::{Packages, is_stock_python};

/// Image for steps when neither the step's `image:` tag nor the notebook's `base_image`
/// names one (Kale's default too).
pub const DEFAULT_IMAGE: &str = "python:3.12";
/// Output key of a step's `system.Metrics` artifact. The hyphen keeps it apart from
/// every data artifact, whose keys are Python identifiers.
pub const METRICS_ARTIFACT: &str = "kale-metrics";
/// The step containers' entry point, shipped in the runtime artifact.
pub const BOOTSTRAP_SOURCE: &str = include_str!("kfp_bootstrap.py");
/// Task (and output key) of the task that unpacks the runtime for the steps; step task
/// names never take it.
pub const RUNTIME_TASK: &str = "kale-runtime";
/// A step container's command: runs the bootstrap from the runtime artifact, whose path
/// is the first argument.
const STEP_LOADER: &str =
    "import runpy, sys; runpy.run_path(sys.argv[1] + '/kfp_bootstrap.py', run_name='__main__')";
/// The runtime task's program. Arguments: runtime id, blob, artifact path, artifact URI,
/// executor output file, and, when the notebook has `imports` or `functions` cells, the
/// blob of [`SharedCells`].
const UNPACK_RUNTIME: &str = r#"# kale: unpack the kale runtime, the step bootstrap and the notebook's shared cells into the artifact every step reads.
import base64, json, os, sys, zlib
rid, blob, path, uri, out = sys.argv[1:6]
files = {}
for packed in sys.argv[2:3] + sys.argv[6:7]:
    files.update(json.loads(zlib.decompress(base64.b64decode(packed)).decode("utf-8")))
os.makedirs(path, exist_ok=True)
for name, text in files.items():
    with open(os.path.join(path, name), "wb") as f:
        f.write(text.encode("utf-8"))
if os.path.dirname(out):
    os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump({"artifacts": {"kale-runtime": {"artifacts": [
        {"name": "kale-runtime", "uri": uri, "metadata": {"runtime_id": rid}}]}}}, f)
"#;

const SCHEMA_VERSION: &str = "2.1.0";

/// What can stop a notebook from becoming a KFP pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("step `{step}`: `limit:{key}:{value}` cannot be expressed in a Kubeflow pipeline")]
    UnsupportedLimit {
        step: String,
        key: String,
        value: String,
    },
    #[error("step `{step}`: `limit:{key}:{value}` is not a Kubernetes quantity")]
    BadQuantity {
        step: String,
        key: String,
        value: String,
    },
    #[error("step `{step}` asks for two accelerator kinds ({first} and {second})")]
    TwoAccelerators {
        step: String,
        first: String,
        second: String,
    },
    #[error("pipeline parameter `{0}` has a value JSON cannot hold (NaN or infinity)")]
    NonFiniteParameter(String),
}

impl CompileError {
    fn hint(&self) -> &'static str {
        match self {
            CompileError::UnsupportedLimit { .. } => {
                "KFP containers take `limit:cpu:N`, `limit:memory:SIZE` and one accelerator such as `limit:nvidia.com/gpu:1`"
            }
            CompileError::BadQuantity { .. } => {
                "write quantities as Kubernetes does: `2`, `500m`, `4Gi`, `512M`; accelerator counts are whole numbers"
            }
            CompileError::TwoAccelerators { .. } => {
                "a KFP container has one accelerator type; keep one `limit:` tag for accelerators"
            }
            CompileError::NonFiniteParameter(_) => {
                "give the parameter a finite default in the `pipeline-parameters` cell"
            }
        }
    }
}

impl From<CompileError> for crate::Error {
    fn from(e: CompileError) -> Self {
        crate::Error::bad_input(&e).with_hint(e.hint())
    }
}

/// A compiled pipeline: the YAML text plus what the user should know about it.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub yaml: String,
    /// The `PipelineSpec` document (first YAML document).
    pub spec: Value,
    /// The `PlatformSpec` document, when any step needs Kubernetes settings.
    pub platform: Option<Value>,
    pub warnings: Vec<String>,
    /// What the user should know but need not fix.
    pub notes: Vec<String>,
}

/// KFP's type name for a pipeline parameter.
pub fn parameter_type(v: &PipelineValue) -> &'static str {
    match v {
        PipelineValue::Int(_) => "NUMBER_INTEGER",
        PipelineValue::Float(_) => "NUMBER_DOUBLE",
        PipelineValue::Str(_) => "STRING",
        PipelineValue::Bool(_) => "BOOLEAN",
    }
}

/// The parameter value as JSON, the form the KFP API requires (numbers as numbers).
pub fn parameter_json(name: &str, v: &PipelineValue) -> Result<Value, CompileError> {
    Ok(match v {
        PipelineValue::Int(i) => json!(i),
        PipelineValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| CompileError::NonFiniteParameter(name.to_string()))?,
        PipelineValue::Str(s) => json!(s),
        PipelineValue::Bool(b) => json!(b),
    })
}

/// The name KFP and Kubernetes accept (`^[a-z0-9][a-z0-9-]{0,127}$`).
pub fn pipeline_name(p: &Pipeline) -> String {
    let mut name = crate::pipeline::sanitize_name(&p.name);
    name.truncate(128);
    name.trim_end_matches('-').to_string()
}

/// Task names for every step: lowercase DNS labels (Argo, which runs KFP, names pods
/// after them), unique even when two step names sanitise alike.
pub fn task_names(p: &Pipeline) -> BTreeMap<String, String> {
    let mut used = BTreeSet::from([RUNTIME_TASK.to_string()]);
    let mut out = BTreeMap::new();
    for step in &p.steps {
        let mut base = crate::pipeline::sanitize_name(&step.name);
        if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
            base = format!("step-{base}");
        }
        base.truncate(60);
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        out.insert(step.name.clone(), name);
    }
    out
}

/// The files the runtime task writes, packed for its command line.
#[derive(Debug)]
pub struct RuntimeBundle {
    /// First 16 hex digits of sha256(runtime, NUL, bootstrap, NUL): what the bootstrap
    /// recomputes from the files it finds.
    pub id: String,
    /// base64 of the zlib-compressed JSON object `{file name: text}`.
    pub blob: String,
}

pub fn runtime_bundle() -> &'static RuntimeBundle {
    static BUNDLE: std::sync::OnceLock<RuntimeBundle> = std::sync::OnceLock::new();
    BUNDLE.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let (runtime, bootstrap) = (
            shipped_source(codegen::RUNTIME_SOURCE),
            shipped_source(BOOTSTRAP_SOURCE),
        );
        let mut h = sha2::Sha256::new();
        for text in [&runtime, &bootstrap] {
            h.update(text.as_bytes());
            h.update([0u8]);
        }
        let digest = h.finalize();
        let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let files = json!({
            codegen::RUNTIME_FILE: runtime,
            "kfp_bootstrap.py": bootstrap,
        });
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(files.to_string().as_bytes(), 9);
        RuntimeBundle {
            id,
            blob: base64::engine::general_purpose::STANDARD.encode(packed),
        }
    })
}

/// The text of a step program's `imports` and `functions` cells, shipped once per
/// pipeline: every plain-Python step holds the same text, every IPython step another
/// (its cells go through `_kale.run_cell`), so a pipeline has at most two.
#[derive(Debug, Default)]
pub struct SharedCells {
    /// Digest (first 16 hex digits of sha256 of the text) → text.
    pub texts: BTreeMap<String, String>,
}

/// The line a step program holds in place of its shared cells; the bootstrap replaces
/// the first line that reads exactly this with the file `shared-<digest>.py` of the
/// runtime artifact, after checking the text's digest.
pub const SHARED_PLACEHOLDER: &str = "# kale: shared cells ";

impl SharedCells {
    /// The program with its shared cells replaced by the placeholder line (the
    /// program as is when it has none). The line map still describes the whole
    /// program, which is what runs.
    pub fn take_from(&mut self, program: &codegen::StepProgram) -> String {
        use sha2::Digest as _;
        if program.shared.is_empty() {
            return program.source.clone();
        }
        let text = &program.source[program.shared.clone()];
        let digest = sha2::Sha256::digest(text.as_bytes());
        let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.texts
            .entry(id.clone())
            .or_insert_with(|| text.to_string());
        format!(
            "{}{SHARED_PLACEHOLDER}{id}\n{}",
            &program.source[..program.shared.start],
            &program.source[program.shared.end..]
        )
    }

    /// base64 of the zlib-compressed JSON object `{shared-<digest>.py: text}`, the
    /// runtime task's last argument; `None` when no step has shared cells.
    pub fn blob(&self) -> Option<String> {
        use base64::Engine as _;
        if self.texts.is_empty() {
            return None;
        }
        let files: Map<String, Value> = self
            .texts
            .iter()
            .map(|(id, text)| (format!("shared-{id}.py"), json!(text)))
            .collect();
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(
            Value::Object(files).to_string().as_bytes(),
            9,
        );
        Some(base64::engine::general_purpose::STANDARD.encode(packed))
    }
}

/// A shipped file as it travels: without its docstrings and comment-only lines (a
/// third of the runtime's bytes; the code that runs is the same).
pub fn shipped_source(source: &str) -> String {
    without_comment_lines(&without_docstrings(source))
}

/// The source without the docstrings of its module, classes and functions (a body
/// that was only a docstring becomes `pass`). Left as it is when it does not parse,
/// and where a docstring shares a line with other code.
pub fn without_docstrings(source: &str) -> String {
    use ruff_python_ast::visitor::{Visitor, walk_stmt};
    use ruff_python_ast::{Expr, Stmt};
    use ruff_text_size::Ranged as _;

    struct Finder {
        /// Byte ranges of docstring statements, and whether each is its body's only
        /// statement.
        found: Vec<(usize, usize, bool)>,
    }
    impl Finder {
        fn body(&mut self, body: &[Stmt]) {
            if let Some(Stmt::Expr(e)) = body.first()
                && matches!(&*e.value, Expr::StringLiteral(_))
            {
                let range = e.range();
                self.found.push((
                    range.start().to_usize(),
                    range.end().to_usize(),
                    body.len() == 1,
                ));
            }
        }
    }
    impl<'a> Visitor<'a> for Finder {
        fn visit_stmt(&mut self, stmt: &'a Stmt) {
            match stmt {
                Stmt::FunctionDef(f) => self.body(&f.body),
                Stmt::ClassDef(c) => self.body(&c.body),
                _ => {}
            }
            walk_stmt(self, stmt);
        }
    }
    let Ok(parsed) = ruff_python_parser::parse_module(source) else {
        return source.to_string();
    };
    let mut finder = Finder { found: Vec::new() };
    finder.body(&parsed.syntax().body);
    for stmt in &parsed.syntax().body {
        finder.visit_stmt(stmt);
    }
    finder.found.sort();
    let mut out = source.to_string();
    for &(start, end, only) in finder.found.iter().rev() {
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let indent = &source[line_start..start];
        let line_end = source[end..]
            .find('\n')
            .map_or(source.len(), |i| end + i + 1);
        if !indent.trim().is_empty() || !source[end..line_end].trim().is_empty() {
            continue;
        }
        let replacement = if only {
            format!("{indent}pass\n")
        } else {
            String::new()
        };
        out.replace_range(line_start..line_end, &replacement);
    }
    out
}

/// The source without its comment-only lines (a tenth of the shipped bytes). Safe
/// because no shipped file (runtime, bootstrap, trial driver) has a multi-line string
/// with a line that starts with `#`; tests/it/kubeflow.rs checks that with Python's
/// tokenizer.
pub fn without_comment_lines(source: &str) -> String {
    source
        .split_inclusive('\n')
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect()
}

/// For each step, the variables it saves that some later step reads: its KFP output
/// artifacts. (`Step::outputs` also holds the metrics it reports, which go into the
/// metrics artifact instead.)
pub fn consumed_outputs(p: &Pipeline) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = p
        .steps
        .iter()
        .map(|s| (s.name.clone(), BTreeSet::new()))
        .collect();
    for step in &p.steps {
        for (var, provider) in &step.inputs {
            out.entry(provider.clone()).or_default().insert(var.clone());
        }
    }
    out
}

fn artifact_type(title: &str) -> Value {
    json!({"artifactType": {"schemaTitle": title, "schemaVersion": "0.0.1"}})
}

/// Builds the IR with no packages to install. Pure: no I/O.
pub fn compile(p: &Pipeline) -> Result<Compiled, CompileError> {
    compile_with(p, &Packages::default())
}

/// What the steps' images lack or install: warnings for imports on a stock Python image
/// that kale cannot pin, notes for what the steps install at start. Shared by
/// `compile` and `validate`.
pub fn image_messages(p: &Pipeline, packages: &Packages) -> (Vec<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    let stock: BTreeSet<String> = p
        .steps
        .iter()
        .map(|s| image_of(p, s))
        .filter(|i| is_stock_python(i))
        .collect();
    if !stock.is_empty() {
        let images = stock
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if !packages.pins.is_empty() {
            notes.push(format!(
                "steps on {images} install {} at start (the versions in {}); set `base_image` to an image that has them to start faster and without a package index",
                packages.pins.join(", "),
                packages.python
            ));
        }
        if !packages.unresolved.is_empty() {
            let why = match &packages.error {
                Some(e) => format!("`{}` did not run ({e})", packages.python),
                None => format!("`{}` does not have them", packages.python),
            };
            warnings.push(format!(
                "steps on {images} import {}, which the image lacks and kale cannot pin: {why}; install them in the Python kale uses (KALE_PYTHON) so compile pins them, or set `base_image` (or a step's `image:` tag) to an image that has them",
                packages.unresolved.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    (warnings, notes)
}

/// Whether a parameter's name says it holds a credential (`db_password`, `API_KEY`,
/// `hfToken`, `client_secret`), word by word: `max_tokens` and `tokenizer` do not.
pub fn looks_like_a_credential(name: &str) -> bool {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() || (c.is_ascii_uppercase() && prev_lower) {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    if !word.is_empty() {
        words.push(word);
    }
    let single = |w: &str| {
        matches!(
            w,
            "password"
                | "passwd"
                | "pwd"
                | "passphrase"
                | "secret"
                | "token"
                | "apikey"
                | "credential"
                | "credentials"
        )
    };
    let pair =
        |a: &str, b: &str| b == "key" && matches!(a, "api" | "access" | "private" | "secret");
    words.iter().any(|w| single(w)) || words.windows(2).any(|w| pair(&w[0], &w[1]))
}

/// Pipeline parameters whose names say they are credentials and whose default is a
/// non-empty string: the YAML carries the default in plain text, for anyone who can
/// read the pipeline (and every run's inputs) to see.
pub fn credential_warnings(p: &Pipeline) -> Vec<String> {
    p.parameters
        .iter()
        .filter(|param| {
            looks_like_a_credential(&param.name)
                && matches!(&param.value, PipelineValue::Str(s) if !s.is_empty())
        })
        .map(|param| {
            format!(
                "pipeline parameter `{}` looks like a credential, and its default is written into the pipeline in plain text, where anyone who can read the pipeline or its runs sees it; keep it in a Kubernetes secret instead and hand it to the steps that need it with a `secret:SECRET_NAME:KEY:ENV_VAR` tag (KFP's secret-as-environment-variable), reading `os.environ[\"ENV_VAR\"]` in the step, and give the parameter an empty default",
                param.name
            )
        })
        .collect()
}

/// Builds the IR; steps whose image is a stock Python image install `packages.pins`
/// at start. Pure: no I/O.
pub fn compile_with(p: &Pipeline, packages: &Packages) -> Result<Compiled, CompileError> {
    let (mut warnings, mut notes) = image_messages(p, packages);
    warnings.extend(credential_warnings(p));
    notes.extend(file_notes(p));
    let name = pipeline_name(p);
    if name != p.name {
        warnings.push(format!(
            "pipeline name `{}` is not a valid KFP name; using `{name}`",
            p.name
        ));
    }
    let tasks_by_step = task_names(p);
    let volumes = pvc_mounts(p, &mut warnings);

    let mut components = Map::new();
    let mut executors = Map::new();
    let mut tasks = Map::new();
    let mut platform_executors = Map::new();

    let consumed = consumed_outputs(p);
    insert_runtime_task(p, &mut components, &mut executors, &mut tasks);

    let mut shared = SharedCells::default();
    for step in &p.steps {
        let task = &tasks_by_step[&step.name];
        let comp = format!("comp-{task}");
        let exec = format!("exec-{task}");
        // What runs on the cluster saves only what later steps read.
        let step = &Step {
            outputs: consumed[&step.name].clone(),
            ..step.clone()
        };

        components.insert(comp.clone(), component(p, step, &exec));
        let (container, mut step_warnings) =
            container(p, step, &volumes, &packages.pins, &mut shared)?;
        warnings.append(&mut step_warnings);
        executors.insert(exec.clone(), json!({ "container": container }));
        tasks.insert(task.clone(), dag_task(p, step, &comp, &tasks_by_step));
        if let Some(k8s) = kubernetes_config(step, &volumes) {
            platform_executors.insert(exec, k8s);
        }
    }
    // The shared cells go to the runtime task, which the steps' programs now name.
    if let Some(blob) = shared.blob()
        && let Some(Value::Array(args)) = executors
            .get_mut(&format!("exec-{RUNTIME_TASK}"))
            .and_then(|e| e["container"].get_mut("args"))
    {
        args.push(json!(blob));
    }

    let mut pipeline_info = Map::new();
    pipeline_info.insert("name".into(), json!(name));
    if !p.description.is_empty() {
        pipeline_info.insert("description".into(), json!(p.description));
    }

    let mut root = Map::new();
    root.insert("dag".into(), json!({ "tasks": tasks }));
    if !p.parameters.is_empty() {
        root.insert("inputDefinitions".into(), input_definitions(p)?);
    }

    let spec = json!({
        "components": components,
        "deploymentSpec": { "executors": executors },
        "pipelineInfo": pipeline_info,
        "root": root,
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": format!("kale-{}", env!("CARGO_PKG_VERSION")),
    });
    let platform = (!platform_executors.is_empty()).then(|| {
        json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": platform_executors}}}})
    });

    let mut yaml = header(p, &name);
    match &platform {
        Some(pl) => yaml.push_str(&to_yaml_multiple(&[&spec, pl])),
        None => yaml.push_str(&to_yaml(&spec)),
    }
    Ok(Compiled {
        yaml,
        spec,
        platform,
        warnings,
        notes,
    })
}

/// What `kale compile` says about files: each one handed from a step to a later one as an
/// artifact, and each one a step reads that no step writes.
fn file_notes(p: &Pipeline) -> Vec<String> {
    let mut notes = Vec::new();
    for (from, to, paths) in handed_files(p) {
        let named = if paths.is_empty() {
            String::new()
        } else {
            format!(
                "{}, and ",
                paths
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        notes.push(format!(
            "files travel from step `{from}` to step `{to}` as an artifact: {named}whatever else `{from}` writes in its working directory"
        ));
    }
    for (step, path) in files_from_outside(p) {
        notes.push(format!(
            "step `{step}` reads `{path}`, which no step writes: the step's image or a mounted volume must have it"
        ));
    }
    notes
}

/// The task that publishes kale's runtime (and the shared cells) as an artifact every
/// step reads.
fn insert_runtime_task(
    p: &Pipeline,
    components: &mut Map<String, Value>,
    executors: &mut Map<String, Value>,
    tasks: &mut Map<String, Value>,
) {
    let (comp, exec) = (
        format!("comp-{RUNTIME_TASK}"),
        format!("exec-{RUNTIME_TASK}"),
    );
    components.insert(
        comp.clone(),
        json!({
            "executorLabel": exec,
            "outputDefinitions": {"artifacts": {RUNTIME_TASK: artifact_type("system.Artifact")}},
        }),
    );
    executors.insert(exec, json!({ "container": runtime_container(p) }));
    tasks.insert(
        RUNTIME_TASK.into(),
        json!({
            "taskInfo": {"name": RUNTIME_TASK},
            "componentRef": {"name": comp},
            "cachingOptions": {"enableCache": true},
        }),
    );
}

/// The pipeline's parameters with their types and defaults.
fn input_definitions(p: &Pipeline) -> Result<Value, CompileError> {
    let mut params = Map::new();
    for param in &p.parameters {
        params.insert(
            param.name.clone(),
            json!({
                "parameterType": parameter_type(&param.value),
                "defaultValue": parameter_json(&param.name, &param.value)?,
                "isOptional": true,
            }),
        );
    }
    Ok(json!({ "parameters": params }))
}

fn header(p: &Pipeline, name: &str) -> String {
    let file = p
        .notebook
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut h = format!(
        "# PIPELINE DEFINITION\n# Name: {name}\n# Generated by kale {} from {file}; do not edit.\n",
        env!("CARGO_PKG_VERSION")
    );
    if !p.parameters.is_empty() {
        h.push_str("# Inputs:\n");
        for param in &p.parameters {
            h.push_str(&format!(
                "#    {}: {} [Default: {}]\n",
                param.name,
                param.type_name(),
                param.value.to_python()
            ));
        }
    }
    h
}

pub(crate) fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).expect("JSON values always serialise to YAML")
}

fn to_yaml_multiple(docs: &[&Value]) -> String {
    serde_saphyr::to_string_multiple(docs).expect("JSON values always serialise to YAML")
}

/// Output key of the files a step writes that later steps read (see [`handed_files`]).
pub const FILES_ARTIFACT: &str = "kale-files";

/// Input key of the files a step receives from `provider`.
fn files_input(provider: &str) -> String {
    format!("{FILES_ARTIFACT}-from-{provider}")
}

/// Steps whose written files some later step reads.
fn file_givers(p: &Pipeline) -> BTreeSet<&str> {
    p.steps
        .iter()
        .flat_map(|s| s.files_from.iter().map(String::as_str))
        .collect()
}

/// Files that travel between steps on Kubeflow, where every step has a file system of
/// its own: (from step, to step, the paths the notebook names). A step receiving files
/// gets everything its giver wrote in its working directory (and the absolute paths the
/// notebook names), named or not.
pub fn handed_files(p: &Pipeline) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for step in &p.steps {
        let reads: Vec<Option<String>> = crate::analysis::file_reads(&step_cells(p, step))
            .into_iter()
            .map(|r| r.path)
            .collect();
        for giver in &step.files_from {
            let Some(g) = p.step(giver) else { continue };
            let mut paths: Vec<String> = crate::analysis::file_writes(&step_cells(p, g))
                .into_iter()
                .filter_map(|w| w.path)
                .filter(|w| {
                    reads
                        .iter()
                        .any(|r| crate::analysis::may_meet(Some(w), r.as_deref()))
                })
                .collect();
            paths.dedup();
            out.push((giver.clone(), step.name.clone(), paths));
        }
    }
    out
}

/// Files steps read that no step writes (a mounted secret, data in the image): left
/// alone, named so the user knows the image or a volume must have them.
pub fn files_from_outside(p: &Pipeline) -> Vec<(String, String)> {
    let written: Vec<String> = p
        .steps
        .iter()
        .flat_map(|s| crate::analysis::file_writes(&step_cells(p, s)))
        .filter_map(|w| w.path)
        .collect();
    let mut out = Vec::new();
    for step in &p.steps {
        for r in crate::analysis::file_reads(&step_cells(p, step)) {
            let Some(path) = r.path else { continue };
            if path.contains("://") {
                continue;
            }
            if !written
                .iter()
                .any(|w| crate::analysis::may_meet(Some(w), Some(&path)))
                && !out.iter().any(|(_, p): &(String, String)| *p == path)
            {
                out.push((step.name.clone(), path));
            }
        }
    }
    out
}

fn step_cells<'a>(p: &'a Pipeline, step: &Step) -> Vec<crate::analysis::CellSource<'a>> {
    step.cells
        .iter()
        .map(|&number| crate::analysis::CellSource {
            number,
            source: p.sources.get(&number).map(String::as_str).unwrap_or(""),
        })
        .collect()
}

fn component(p: &Pipeline, step: &Step, exec: &str) -> Value {
    let mut c = Map::new();
    c.insert("executorLabel".into(), json!(exec));
    let mut inputs = Map::new();
    let mut arts: Map<String, Value> = step
        .inputs
        .keys()
        .map(|v| (v.clone(), artifact_type("system.Dataset")))
        .collect();
    arts.insert(RUNTIME_TASK.into(), artifact_type("system.Artifact"));
    for giver in &step.files_from {
        arts.insert(files_input(giver), artifact_type("system.Artifact"));
    }
    inputs.insert("artifacts".into(), Value::Object(arts));
    let params: Map<String, Value> = step_parameters(p, step)
        .map(|param| {
            (
                param.name.clone(),
                json!({"parameterType": parameter_type(&param.value)}),
            )
        })
        .collect();
    if !params.is_empty() {
        inputs.insert("parameters".into(), Value::Object(params));
    }
    c.insert("inputDefinitions".into(), Value::Object(inputs));
    let mut outs: Map<String, Value> = step
        .outputs
        .iter()
        .map(|v| (v.clone(), artifact_type("system.Dataset")))
        .collect();
    if !step.metrics.is_empty() {
        outs.insert(METRICS_ARTIFACT.into(), artifact_type("system.Metrics"));
    }
    if file_givers(p).contains(step.name.as_str()) {
        outs.insert(FILES_ARTIFACT.into(), artifact_type("system.Artifact"));
    }
    if !outs.is_empty() {
        c.insert(
            "outputDefinitions".into(),
            json!({ "artifacts": Value::Object(outs) }),
        );
    }
    Value::Object(c)
}

fn step_parameters<'a>(
    p: &'a Pipeline,
    step: &'a Step,
) -> impl Iterator<Item = &'a crate::pipeline::Parameter> {
    step.parameters.iter().filter_map(|n| p.parameter(n))
}

fn python_type(v: &PipelineValue) -> &'static str {
    match v {
        PipelineValue::Int(_) => "int",
        PipelineValue::Float(_) => "float",
        PipelineValue::Str(_) => "str",
        PipelineValue::Bool(_) => "bool",
    }
}

/// The step program with no parameter values: `step_program` writes an assignment only
/// for parameters present in `values`, and the bootstrap supplies them as the program's
/// initial globals instead.
pub fn program_without_values(p: &Pipeline, step: &Step) -> codegen::StepProgram {
    codegen::step_program(p, step, &BTreeMap::new())
}

/// The image a step runs in: its `image:` tag, else the notebook's `base_image`, else
/// [`DEFAULT_IMAGE`].
pub fn image_of(p: &Pipeline, step: &Step) -> String {
    step.config
        .image
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| p.metadata.base_image.clone())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
}

fn container(
    p: &Pipeline,
    step: &Step,
    volumes: &[PvcMount],
    pins: &[String],
    shared: &mut SharedCells,
) -> Result<(Value, Vec<String>), CompileError> {
    let mut warnings = Vec::new();
    let program = program_without_values(p, step);
    if program.ipython {
        warnings.push(format!(
            "step `{}` uses IPython syntax: its image must have IPython installed",
            step.name
        ));
    }
    let bundle = runtime_bundle();
    let spans: Vec<String> = program
        .line_map
        .spans
        .iter()
        .map(|s| format!("{}:{}:{}", s.start, s.len, s.cell))
        .collect();
    let mut args: Vec<String> = vec![
        format!("{{{{$.inputs.artifacts['{RUNTIME_TASK}'].path}}}}"),
        "--step".into(),
        step.name.clone(),
        "--runtime-id".into(),
        bundle.id.clone(),
        "--lines".into(),
        spans.join(","),
        "--program".into(),
        shared.take_from(&program),
    ];
    for param in step_parameters(p, step) {
        args.extend([
            "--param".into(),
            param.name.clone(),
            python_type(&param.value).into(),
            format!("{{{{$.inputs.parameters['{}']}}}}", param.name),
        ]);
    }
    for var in step.inputs.keys() {
        args.extend([
            "--input".into(),
            var.clone(),
            format!("{{{{$.inputs.artifacts['{var}'].path}}}}"),
        ]);
    }
    for var in &step.outputs {
        args.extend([
            "--output".into(),
            var.clone(),
            format!("{{{{$.outputs.artifacts['{var}'].path}}}}"),
            format!("{{{{$.outputs.artifacts['{var}'].uri}}}}"),
        ]);
    }
    for giver in &step.files_from {
        args.extend([
            "--files-in".into(),
            format!("{{{{$.inputs.artifacts['{}'].path}}}}", files_input(giver)),
        ]);
    }
    if file_givers(p).contains(step.name.as_str()) {
        args.extend([
            "--files-out".into(),
            format!("{{{{$.outputs.artifacts['{FILES_ARTIFACT}'].path}}}}"),
            format!("{{{{$.outputs.artifacts['{FILES_ARTIFACT}'].uri}}}}"),
        ]);
        // Paths the notebook names, absolute ones included (the working directory is
        // scanned for the rest).
        let mut named: Vec<String> = crate::analysis::file_writes(&step_cells(p, step))
            .into_iter()
            .filter_map(|w| w.path)
            .collect();
        named.dedup();
        for path in named {
            args.extend(["--files-named".into(), path]);
        }
    }
    if !step.metrics.is_empty() {
        args.extend([
            "--metrics".into(),
            format!("{{{{$.outputs.artifacts['{METRICS_ARTIFACT}'].path}}}}"),
            format!("{{{{$.outputs.artifacts['{METRICS_ARTIFACT}'].uri}}}}"),
        ]);
    }
    let image = image_of(p, step);
    if is_stock_python(&image) {
        for pin in pins {
            args.extend(["--install".into(), pin.clone()]);
        }
    }
    args.extend([
        "--executor-output".into(),
        "{{$.outputs.output_file}}".into(),
    ]);

    let mut c = Map::new();
    c.insert("image".into(), json!(image));
    c.insert(
        "command".into(),
        json!(["python3", "-u", "-c", STEP_LOADER]),
    );
    c.insert("args".into(), json!(args));
    let mut env = vec![json!({"name": "PYTHONUNBUFFERED", "value": "1"})];
    for v in volumes.iter().filter(|v| v.expose_as_env) {
        env.push(json!({"name": v.env_name(), "value": v.mount_path}));
    }
    c.insert("env".into(), Value::Array(env));
    if let Some(r) = resources(step)? {
        c.insert("resources".into(), r);
    }
    Ok((Value::Object(c), warnings))
}

/// The image of steps without an `image:` tag: the notebook's `base_image`, else
/// [`DEFAULT_IMAGE`]. Katib trials run in it too.
pub fn pipeline_image(p: &Pipeline) -> String {
    p.metadata
        .base_image
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
}

/// The runtime task's container: the pipeline's base image, which the steps without an
/// `image:` tag use too, so the node has it already.
fn runtime_container(p: &Pipeline) -> Value {
    let bundle = runtime_bundle();
    let image = pipeline_image(p);
    json!({
        "image": image,
        "command": ["python3", "-c", UNPACK_RUNTIME],
        "args": [
            bundle.id,
            bundle.blob,
            format!("{{{{$.outputs.artifacts['{RUNTIME_TASK}'].path}}}}"),
            format!("{{{{$.outputs.artifacts['{RUNTIME_TASK}'].uri}}}}"),
            "{{$.outputs.output_file}}",
        ],
    })
}

fn is_quantity(s: &str) -> bool {
    // Kubernetes' resource.Quantity syntax: a decimal number with an optional binary
    // (Ki..Ei), decimal (n, u, m, k, M..E) or exponent suffix.
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$",
        )
        .unwrap()
    })
    .is_match(s)
}

fn resources(step: &Step) -> Result<Option<Value>, CompileError> {
    let mut r = Map::new();
    let mut accelerator: Option<(String, String)> = None;
    for (key, value) in &step.config.limits {
        let err_quantity = || CompileError::BadQuantity {
            step: step.name.clone(),
            key: key.clone(),
            value: value.clone(),
        };
        match key.as_str() {
            "cpu" => {
                if !is_quantity(value) {
                    return Err(err_quantity());
                }
                r.insert("resourceCpuLimit".into(), json!(value));
            }
            "memory" => {
                if !is_quantity(value) {
                    return Err(err_quantity());
                }
                r.insert("resourceMemoryLimit".into(), json!(value));
            }
            // Extended resources (`vendor.com/gpu`, `google.com/tpu`) are what KFP calls
            // accelerators.
            k if k.contains('/') => {
                if value.parse::<u32>().is_err() {
                    return Err(err_quantity());
                }
                if let Some((first, _)) = &accelerator {
                    return Err(CompileError::TwoAccelerators {
                        step: step.name.clone(),
                        first: first.clone(),
                        second: k.to_string(),
                    });
                }
                accelerator = Some((k.to_string(), value.clone()));
            }
            _ => {
                return Err(CompileError::UnsupportedLimit {
                    step: step.name.clone(),
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
    }
    if let Some((kind, count)) = accelerator {
        // The deprecated `type`/`count` pair too, as the SDK writes it, for KFP
        // backends older than the `resource*` fields.
        r.insert(
            "accelerator".into(),
            json!({"resourceType": kind, "resourceCount": count, "type": kind, "count": count}),
        );
    }
    Ok((!r.is_empty()).then_some(Value::Object(r)))
}

fn dag_task(
    p: &Pipeline,
    step: &Step,
    comp: &str,
    tasks_by_step: &BTreeMap<String, String>,
) -> Value {
    let mut t = Map::new();
    t.insert("taskInfo".into(), json!({"name": step.name}));
    t.insert("componentRef".into(), json!({"name": comp}));
    let mut inputs = Map::new();
    let mut arts: Map<String, Value> = step
        .inputs
        .iter()
        .map(|(var, provider)| {
            (
                var.clone(),
                json!({"taskOutputArtifact": {
                    "producerTask": tasks_by_step[provider],
                    "outputArtifactKey": var,
                }}),
            )
        })
        .collect();
    arts.insert(
        RUNTIME_TASK.into(),
        json!({"taskOutputArtifact": {"producerTask": RUNTIME_TASK, "outputArtifactKey": RUNTIME_TASK}}),
    );
    for giver in &step.files_from {
        arts.insert(
            files_input(giver),
            json!({"taskOutputArtifact": {
                "producerTask": tasks_by_step[giver],
                "outputArtifactKey": FILES_ARTIFACT,
            }}),
        );
    }
    inputs.insert("artifacts".into(), Value::Object(arts));
    let params: Map<String, Value> = step_parameters(p, step)
        .map(|param| {
            (
                param.name.clone(),
                json!({"componentInputParameter": param.name}),
            )
        })
        .collect();
    if !params.is_empty() {
        inputs.insert("parameters".into(), Value::Object(params));
    }
    t.insert("inputs".into(), Value::Object(inputs));
    // `prev:` parents and data producers alike: the explicit order the notebook asked
    // for survives even where no variable flows (Kale drops those edges).
    let deps: BTreeSet<&str> = step
        .depends_on
        .iter()
        .chain(step.inputs.values())
        .map(|s| tasks_by_step[s].as_str())
        .chain([RUNTIME_TASK])
        .collect();
    t.insert("dependentTasks".into(), json!(deps));
    let cache = step
        .config
        .cache
        .or(p.metadata.enable_caching)
        .unwrap_or(true);
    t.insert("cachingOptions".into(), json!({"enableCache": cache}));
    Value::Object(t)
}

/// A PVC from the notebook's `volumes`, mounted into every step.
#[derive(Debug, Clone)]
pub struct PvcMount {
    pub claim: String,
    pub mount_path: String,
    pub expose_as_env: bool,
}

impl PvcMount {
    /// Kale's variable name for an exposed volume: `KALE_VOLUME_<CLAIM>`.
    pub fn env_name(&self) -> String {
        let upper: String = self
            .claim
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("KALE_VOLUME_{upper}")
    }
}

/// The notebook's PVC volumes. Kale 2.x mounts only `type: pvc` and drops the rest;
/// kale does the same, but says so.
fn pvc_mounts(p: &Pipeline, warnings: &mut Vec<String>) -> Vec<PvcMount> {
    let mut out = Vec::new();
    for v in &p.metadata.volumes {
        if v.kind == "pvc" {
            out.push(PvcMount {
                claim: v.name.clone(),
                mount_path: v.mount_point.clone(),
                expose_as_env: v.expose_as_env_var,
            });
        } else {
            warnings.push(format!(
                "volume `{}` (type `{}`) is not mounted: only existing claims (`type: pvc`) are; create the PersistentVolumeClaim on the cluster and list it with `type: pvc`",
                v.name, v.kind
            ));
        }
    }
    out
}

fn kubernetes_config(step: &Step, volumes: &[PvcMount]) -> Option<Value> {
    let mut k = Map::new();
    let cfg = &step.config;
    if !cfg.labels.is_empty() || !cfg.annotations.is_empty() {
        let mut md = Map::new();
        if !cfg.labels.is_empty() {
            md.insert("labels".into(), json!(cfg.labels));
        }
        if !cfg.annotations.is_empty() {
            md.insert("annotations".into(), json!(cfg.annotations));
        }
        k.insert("podMetadata".into(), Value::Object(md));
    }
    if !cfg.secrets.is_empty() {
        let mut by_secret: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for s in &cfg.secrets {
            by_secret
                .entry(&s.name)
                .or_default()
                .push(json!({"secretKey": s.key, "envVar": s.env}));
        }
        let list: Vec<Value> = by_secret
            .into_iter()
            .map(|(name, keys)| json!({"secretName": name, "keyToEnv": keys}))
            .collect();
        k.insert("secretAsEnv".into(), Value::Array(list));
    }
    if !volumes.is_empty() {
        let mounts: Vec<Value> = volumes
            .iter()
            .map(|v| {
                // `constant` is deprecated but still what older backends read; the SDK
                // writes both.
                json!({
                    "constant": v.claim,
                    "mountPath": v.mount_path,
                    "pvcNameParameter": {"runtimeValue": {"constant": v.claim}},
                })
            })
            .collect();
        k.insert("pvcMount".into(), Value::Array(mounts));
    }
    (!k.is_empty()).then_some(Value::Object(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "0.5", "4Gi", "512M", "1e3", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "4GB", "two", "1.2.3", "-1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn env_names_follow_kale() {
        let v = PvcMount {
            claim: "my-data.v2".into(),
            mount_path: "/data".into(),
            expose_as_env: true,
        };
        assert_eq!(v.env_name(), "KALE_VOLUME_MY_DATA_V2");
    }

    #[test]
    fn the_runtime_bundle_holds_exactly_the_runtime_and_the_bootstrap() {
        use base64::Engine as _;
        let b = runtime_bundle();
        assert_eq!(b.id.len(), 16);
        assert!(b.id.bytes().all(|c| c.is_ascii_hexdigit()));
        let packed = base64::engine::general_purpose::STANDARD
            .decode(&b.blob)
            .unwrap();
        let files: Value =
            serde_json::from_slice(&miniz_oxide::inflate::decompress_to_vec_zlib(&packed).unwrap())
                .unwrap();
        // Nothing else (no kale version, no notebook): the text, and so every step's
        // cache key on a cluster, changes only with the runtime's source.
        assert_eq!(
            files,
            json!({
                "kale_runtime.py": shipped_source(codegen::RUNTIME_SOURCE),
                "kfp_bootstrap.py": shipped_source(BOOTSTRAP_SOURCE),
            })
        );
        // Once per pipeline (the runtime task), small enough that the digits pipeline
        // stays small per task (tests/it/kubeflow.rs). 30 KB since the runtime carries
        // process state, by-value code and shared objects between steps.
        assert!(b.blob.len() < 34_000, "{}", b.blob.len());
        assert_eq!(
            without_comment_lines("a = 1\n  # why\n#x\nb = '#'\n"),
            "a = 1\nb = '#'\n"
        );
        let source = r#""""Module."""
import os


def f():
    """Only a docstring.

    Two lines."""


class C:
    '''Doc.'''
    x = "not a docstring"

    def g(self):
        """G."""; return 1
"#;
        assert_eq!(
            without_docstrings(source),
            r#"import os


def f():
    pass


class C:
    x = "not a docstring"

    def g(self):
        """G."""; return 1
"#
        );
    }

    #[test]
    fn shared_cells_leave_one_placeholder_line_and_come_back_whole() {
        let program = codegen::StepProgram {
            source: "head\n# --- cell 1\nimport os\n# --- cell 2\ndef f():\n    pass\nrest\n"
                .into(),
            line_map: codegen::LineMap::default(),
            ipython: false,
            shared: 5..59,
        };
        let mut shared = SharedCells::default();
        let sent = shared.take_from(&program);
        let (id, text) = shared.texts.iter().next().unwrap();
        assert_eq!(
            text,
            "# --- cell 1\nimport os\n# --- cell 2\ndef f():\n    pass\n"
        );
        assert_eq!(sent, format!("head\n{SHARED_PLACEHOLDER}{id}\nrest\n"));
        // The bootstrap's replacement gives back the program kale runs locally.
        assert_eq!(
            sent.replace(&format!("{SHARED_PLACEHOLDER}{id}\n"), text),
            program.source
        );
        // A second step with the same cells adds nothing; a program without shared
        // cells is sent whole.
        shared.take_from(&program);
        assert_eq!(shared.texts.len(), 1);
        let plain = codegen::StepProgram {
            shared: 5..5,
            ..program.clone()
        };
        assert_eq!(shared.take_from(&plain), program.source);
        assert!(SharedCells::default().blob().is_none());
    }

    #[test]
    fn credential_names() {
        for yes in [
            "password",
            "db_password",
            "API_KEY",
            "api_key",
            "apiKey",
            "hf_token",
            "hfToken",
            "client_secret",
            "AWS_SECRET_ACCESS_KEY",
            "access_key",
            "private_key",
            "pwd",
            "credentials",
        ] {
            assert!(looks_like_a_credential(yes), "{yes}");
        }
        for no in [
            "lr",
            "max_tokens",
            "tokenizer_name",
            "n_estimators",
            "keyword",
            "monkey",
        ] {
            assert!(!looks_like_a_credential(no), "{no}");
        }
    }

    #[test]
    fn parameter_types_and_values() {
        assert_eq!(parameter_type(&PipelineValue::Int(3)), "NUMBER_INTEGER");
        assert_eq!(parameter_type(&PipelineValue::Float(0.5)), "NUMBER_DOUBLE");
        assert_eq!(parameter_type(&PipelineValue::Str("a".into())), "STRING");
        assert_eq!(parameter_type(&PipelineValue::Bool(true)), "BOOLEAN");
        assert_eq!(
            parameter_json("x", &PipelineValue::Int(3)).unwrap(),
            json!(3)
        );
        assert!(parameter_json("x", &PipelineValue::Float(f64::NAN)).is_err());
    }
}
