//! The Kale cell-tag language (`../shared/research/kale.md` §1a), one tag at a time.
//!
//! Parsing a tag never fails hard: an unknown or malformed tag becomes a
//! [`TagProblem`] the caller reports against the cell, and the cell is then treated as if
//! the tag were absent.

use std::sync::LazyLock;

use regex::Regex;

/// Names of special blocks and of the step tags themselves. Kale turns `step:skip` into
/// a skipped cell and `step:imports` into an imports cell without a word; kale refuses
/// them instead. (The 2019 `block:imports` form is accepted: it is how the first Kale
/// versions tagged imports.)
pub const RESERVED_STEP_NAMES: &[&str] = &[
    "skip",
    "imports",
    "functions",
    "pipeline_parameters",
    "pipeline_metrics",
    "step",
    "block",
    "prev",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tag {
    Imports,
    Functions,
    PipelineParameters,
    PipelineMetrics,
    Skip,
    /// `step:NAME` or the legacy `block:NAME`; an empty name (`step:`) continues the
    /// previous block, like an untagged cell.
    Step {
        name: String,
        legacy: bool,
    },
    /// One or more parents: `prev:a`, or the 2019 form `prev:a:b`.
    Prev(Vec<String>),
    Limit {
        resource: String,
        value: String,
    },
    Annotation {
        key: String,
        value: String,
    },
    Label {
        key: String,
        value: String,
    },
    Image(String),
    Cache(bool),
    Report(bool),
    Secret {
        name: String,
        key: String,
        env: String,
    },
    /// Kale 2.3's multi-notebook composition; recognised so the error can say so.
    Notebook(String),
}

impl Tag {
    /// Tags that make a cell a special block and override every other tag on it.
    pub fn is_special(&self) -> bool {
        matches!(
            self,
            Tag::Imports
                | Tag::Functions
                | Tag::PipelineParameters
                | Tag::PipelineMetrics
                | Tag::Skip
        )
    }
}

/// Why a tag could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagProblem {
    /// Foreign tags (papermill's `parameters`, Jupyter Book's `hide-input`, ...) are
    /// harmless and only warned about; everything else is an error.
    pub is_error: bool,
    pub message: String,
    pub hint: Option<String>,
}

const NAME: &str = "[_a-z][_a-z0-9]*";
const K8S_KEY: &str = r"(?:[a-zA-Z0-9]+(?:[a-zA-Z0-9\-_.]*[a-zA-Z0-9])?/)?[a-zA-Z0-9]+(?:[a-zA-Z0-9\-_.]*[a-zA-Z0-9])?";
const DNS_SUBDOMAIN: &str =
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*";

static STEP_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!("^{NAME}$")).unwrap());
static LIMIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^limit:([A-Za-z0-9_\-./]+):([_a-zA-Z0-9.]+)$").unwrap());
static KEY_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^(annotation|label):({K8S_KEY}):(.*)$")).unwrap());
static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^secret:({DNS_SUBDOMAIN}):([-._a-zA-Z0-9]+):([a-zA-Z_][a-zA-Z0-9_]*)$"
    ))
    .unwrap()
});

/// Tags other notebook tools put on cells, and which tool they belong to.
fn foreign_tool(tag: &str) -> Option<&'static str> {
    Some(match tag {
        "parameters" | "injected-parameters" => "papermill",
        "hide-input" | "hide-output" | "hide-cell" | "remove-input" | "remove-output"
        | "remove-cell" | "remove_cell" | "remove_input" | "remove_output" | "full-width"
        | "margin" | "output_scroll" | "scroll-output" | "scroll-input" | "thebe-init" => {
            "Jupyter Book / nbconvert"
        }
        "raises-exception" | "skip-execution" => "nbclient / nbsphinx",
        "nbsphinx-thumbnail" | "nbsphinx-hidden" | "nbsphinx-gallery" => "nbsphinx",
        "active-ipynb" | "active-py" | "active-md" => "jupytext",
        "hide_input" | "hide_output" | "export" | "exporti" | "exports" | "hide" => "nbdev",
        t if t.starts_with("nbval-") => "nbval",
        _ => return None,
    })
}

pub fn parse_tag(tag: &str) -> Result<Tag, TagProblem> {
    match tag {
        "imports" => return Ok(Tag::Imports),
        "functions" => return Ok(Tag::Functions),
        "pipeline-parameters" => return Ok(Tag::PipelineParameters),
        "pipeline-metrics" => return Ok(Tag::PipelineMetrics),
        "skip" => return Ok(Tag::Skip),
        "cache:enabled" => return Ok(Tag::Cache(true)),
        "cache:disabled" => return Ok(Tag::Cache(false)),
        "report:enabled" => return Ok(Tag::Report(true)),
        "report:disabled" => return Ok(Tag::Report(false)),
        _ => {}
    }
    if let Some(tool) = foreign_tool(tag) {
        return Err(TagProblem {
            is_error: false,
            message: format!("tag `{tag}` belongs to {tool}; kale ignores it"),
            // Papermill's parameters are what kale's `pipeline-parameters` are.
            hint: (tag == "parameters").then(|| {
                "if this cell holds the notebook's parameters, tag it `pipeline-parameters` as well (papermill keeps reading `parameters`)".to_string()
            }),
        });
    }
    let Some((kind, rest)) = tag.split_once(':') else {
        return Err(tag_error(
            format!("unknown tag `{tag}`"),
            Some(known_tags_hint(tag)),
        ));
    };
    match kind {
        "block" if matches!(rest, "imports" | "functions" | "skip") => Ok(match rest {
            "imports" => Tag::Imports,
            "functions" => Tag::Functions,
            _ => Tag::Skip,
        }),
        "step" | "block" => {
            let legacy = kind == "block";
            if rest.is_empty() {
                return Ok(Tag::Step {
                    name: String::new(),
                    legacy,
                });
            }
            check_step_name(rest, tag)?;
            Ok(Tag::Step {
                name: rest.to_string(),
                legacy,
            })
        }
        "prev" => {
            let parents: Vec<String> = rest.split(':').map(str::to_string).collect();
            for p in &parents {
                check_step_name(p, tag)?;
            }
            Ok(Tag::Prev(parents))
        }
        "notebook" => Ok(Tag::Notebook(rest.to_string())),
        _ => config_tag(tag, kind, rest),
    }
}

fn tag_error(message: String, hint: Option<String>) -> TagProblem {
    TagProblem {
        is_error: true,
        message,
        hint,
    }
}

/// A step's configuration tag (`limit:`, `label:`, `annotation:`, `image:`, `cache:`,
/// `report:`, `secret:`), `kind` and `rest` being the parts of `tag` around its
/// first colon.
fn config_tag(tag: &str, kind: &str, rest: &str) -> Result<Tag, TagProblem> {
    match kind {
        "limit" => match LIMIT.captures(tag) {
            Some(c) => Ok(Tag::Limit {
                resource: c[1].to_string(),
                value: c[2].to_string(),
            }),
            None => Err(tag_error(
                format!("malformed limit tag `{tag}`"),
                Some("write `limit:RESOURCE:VALUE`, e.g. `limit:nvidia.com/gpu:1`, `limit:memory:4Gi` or `limit:cpu:500m`".into()),
            )),
        },
        "annotation" | "label" => match KEY_VALUE.captures(tag) {
            Some(c) => {
                let key = c[2].to_string();
                let value = c[3].to_string();
                Ok(if kind == "label" {
                    Tag::Label { key, value }
                } else {
                    Tag::Annotation { key, value }
                })
            }
            None => Err(tag_error(
                format!("malformed {kind} tag `{tag}`"),
                Some(format!(
                    "write `{kind}:KEY:VALUE` with a Kubernetes key such as `example.com/team`"
                )),
            )),
        },
        "image" => {
            if rest.trim().is_empty() {
                Err(tag_error(
                    format!("image tag `{tag}` names no image"),
                    Some("write `image:REF`, e.g. `image:python:3.12-slim`".into()),
                ))
            } else {
                Ok(Tag::Image(rest.to_string()))
            }
        }
        "cache" | "report" => Err(tag_error(
            format!("malformed {kind} tag `{tag}`"),
            Some(format!("write `{kind}:enabled` or `{kind}:disabled`")),
        )),
        "secret" => match SECRET.captures(tag) {
            Some(c) => Ok(Tag::Secret {
                name: c[1].to_string(),
                key: c[2].to_string(),
                env: c[3].to_string(),
            }),
            None => Err(tag_error(
                format!("malformed secret tag `{tag}`"),
                Some("write `secret:SECRET_NAME:KEY:ENV_VAR`, e.g. `secret:db-creds:password:DB_PASSWORD`".into()),
            )),
        },
        _ => Err(tag_error(
            format!("unknown tag `{tag}`"),
            Some(known_tags_hint(tag)),
        )),
    }
}

fn check_step_name(name: &str, tag: &str) -> Result<(), TagProblem> {
    // A step's name is a directory of every run (`steps/<name>/`) and a KFP task.
    if name.len() > crate::names::MAX_LEN {
        return Err(TagProblem {
            is_error: true,
            message: format!(
                "step name `{}` is too long: at most {} characters",
                crate::names::shown(name),
                crate::names::MAX_LEN
            ),
            hint: Some("give the step a shorter name".into()),
        });
    }
    if !STEP_NAME.is_match(name) {
        let suggestion = suggest_step_name(name);
        let (name, tag) = (crate::names::shown(name), crate::names::shown(tag));
        return Err(TagProblem {
            is_error: true,
            message: format!(
                "invalid step name `{name}` in tag `{tag}`: step names use lowercase letters, digits and `_`, and do not start with a digit"
            ),
            hint: suggestion.map(|s| format!("rename it, e.g. `{s}`")),
        });
    }
    if RESERVED_STEP_NAMES.contains(&name) {
        return Err(TagProblem {
            is_error: true,
            message: format!("`{name}` is a reserved word and cannot name a step (tag `{tag}`)"),
            hint: Some(format!("rename the step, e.g. `{name}_step`")),
        });
    }
    Ok(())
}

fn suggest_step_name(name: &str) -> Option<String> {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    (!out.is_empty() && STEP_NAME.is_match(&out)).then_some(out)
}

fn known_tags_hint(tag: &str) -> String {
    let known = "imports, functions, pipeline-parameters, pipeline-metrics, skip, step:NAME, prev:NAME, limit:RESOURCE:VALUE, annotation:K:V, label:K:V, image:REF, cache:enabled|disabled, secret:NAME:KEY:ENV";
    let lower = tag.to_ascii_lowercase();
    let guess = [
        ("import", "imports"),
        ("function", "functions"),
        ("param", "pipeline-parameters"),
        ("metric", "pipeline-metrics"),
    ]
    .iter()
    .find(|(needle, _)| lower.contains(needle))
    .map(|(_, tag)| *tag);
    match guess {
        Some(g) => format!("did you mean `{g}`? kale's tags are: {known}"),
        None => format!("kale's tags are: {known}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_tags() {
        assert_eq!(parse_tag("imports"), Ok(Tag::Imports));
        assert_eq!(parse_tag("functions"), Ok(Tag::Functions));
        assert_eq!(
            parse_tag("pipeline-parameters"),
            Ok(Tag::PipelineParameters)
        );
        assert_eq!(parse_tag("pipeline-metrics"), Ok(Tag::PipelineMetrics));
        assert_eq!(parse_tag("skip"), Ok(Tag::Skip));
    }

    #[test]
    fn step_and_legacy_block() {
        assert_eq!(
            parse_tag("step:load_data"),
            Ok(Tag::Step {
                name: "load_data".into(),
                legacy: false
            })
        );
        assert_eq!(
            parse_tag("block:load_data"),
            Ok(Tag::Step {
                name: "load_data".into(),
                legacy: true
            })
        );
        assert_eq!(
            parse_tag("step:"),
            Ok(Tag::Step {
                name: "".into(),
                legacy: false
            })
        );
        assert_eq!(parse_tag("prev:a1"), Ok(Tag::Prev(vec!["a1".into()])));
        assert_eq!(
            parse_tag("prev:a:b"),
            Ok(Tag::Prev(vec!["a".into(), "b".into()]))
        );
        assert_eq!(parse_tag("block:imports"), Ok(Tag::Imports));
        assert_eq!(parse_tag("block:functions"), Ok(Tag::Functions));
    }

    #[test]
    fn invalid_and_reserved_step_names() {
        let e = parse_tag("step:Load").unwrap_err();
        assert!(e.is_error && e.message.contains("invalid step name"));
        assert_eq!(e.hint.as_deref(), Some("rename it, e.g. `load`"));
        let e = parse_tag("step:1st").unwrap_err();
        assert!(e.message.contains("invalid step name"));
        let e = parse_tag("step:skip").unwrap_err();
        assert!(e.message.contains("reserved"));
        let e = parse_tag("step:imports").unwrap_err();
        assert!(e.message.contains("reserved"));
        assert!(parse_tag("prev:Bad-Name").is_err());
    }

    #[test]
    fn limits_keep_every_resource() {
        assert_eq!(
            parse_tag("limit:nvidia.com/gpu:1"),
            Ok(Tag::Limit {
                resource: "nvidia.com/gpu".into(),
                value: "1".into()
            })
        );
        assert_eq!(
            parse_tag("limit:memory:4Gi"),
            Ok(Tag::Limit {
                resource: "memory".into(),
                value: "4Gi".into()
            })
        );
        assert_eq!(
            parse_tag("limit:cpu:500m"),
            Ok(Tag::Limit {
                resource: "cpu".into(),
                value: "500m".into()
            })
        );
        assert!(parse_tag("limit:cpu").is_err());
    }

    #[test]
    fn label_and_annotation_values_keep_colons() {
        assert_eq!(
            parse_tag("annotation:foo.io/bar:baz:qux"),
            Ok(Tag::Annotation {
                key: "foo.io/bar".into(),
                value: "baz:qux".into()
            })
        );
        assert_eq!(
            parse_tag("label:access-ml-pipeline:true"),
            Ok(Tag::Label {
                key: "access-ml-pipeline".into(),
                value: "true".into()
            })
        );
        assert!(parse_tag("label::x").is_err());
    }

    #[test]
    fn image_cache_report_secret() {
        assert_eq!(
            parse_tag("image:python:3.11-slim"),
            Ok(Tag::Image("python:3.11-slim".into()))
        );
        assert_eq!(parse_tag("cache:disabled"), Ok(Tag::Cache(false)));
        assert_eq!(parse_tag("report:enabled"), Ok(Tag::Report(true)));
        assert!(parse_tag("cache:maybe").is_err());
        assert_eq!(
            parse_tag("secret:db.creds:pass_word:DB_PASS"),
            Ok(Tag::Secret {
                name: "db.creds".into(),
                key: "pass_word".into(),
                env: "DB_PASS".into()
            })
        );
        assert!(parse_tag("secret:Bad:k:ENV").is_err());
        assert!(parse_tag("image:").is_err());
    }

    #[test]
    fn foreign_tags_warn_and_unknown_tags_error() {
        let p = parse_tag("parameters").unwrap_err();
        assert!(!p.is_error);
        assert!(p.message.contains("papermill"));
        assert!(!parse_tag("hide-input").unwrap_err().is_error);
        let u = parse_tag("import").unwrap_err();
        assert!(u.is_error);
        assert!(u.hint.unwrap().contains("did you mean `imports`"));
        assert!(parse_tag("frobnicate:x").unwrap_err().is_error);
        assert!(parse_tag("").unwrap_err().is_error);
    }
}
