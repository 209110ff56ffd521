//! `-p name=value` parameter overrides, typed by the parameter's default.

use crate::analysis::PipelineValue;

use super::Pipeline;

/// Parses `name=value` against the pipeline's parameters. An error is the problem and
/// a hint saying what would be accepted.
pub fn parse_override(
    pipeline: &Pipeline,
    text: &str,
) -> Result<(String, PipelineValue), (String, String)> {
    let example = pipeline
        .parameters
        .first()
        .map(|p| format!("-p {}={}", p.name, p.value.to_python().trim_matches('\'')))
        .unwrap_or_else(|| "-p lr=0.1".into());
    let Some((name, raw)) = text.split_once('=') else {
        return Err((
            format!("`-p {text}` is not of the form NAME=VALUE"),
            format!("write e.g. `{example}`"),
        ));
    };
    let name = name.trim();
    let Some(param) = pipeline.parameter(name) else {
        let known: Vec<String> = pipeline
            .parameters
            .iter()
            .map(|p| format!("`{}`", p.name))
            .collect();
        return Err(if known.is_empty() {
            (
                format!(
                    "`{name}` is not a pipeline parameter: the notebook has no `pipeline-parameters` cell"
                ),
                format!(
                    "tag the cell that assigns `{name}` `pipeline-parameters` to set it with -p"
                ),
            )
        } else {
            (
                format!(
                    "`{name}` is not a pipeline parameter; the parameters are {}",
                    known.join(", ")
                ),
                "-p sets only what the `pipeline-parameters` cell assigns; `kale inspect NB` lists the parameters".into(),
            )
        });
    };
    let value = convert(&param.value, raw).map_err(|expected| {
        (
            format!(
                "`-p {name}={raw}`: `{name}` is {} (default {}), and `{raw}` is not {expected}",
                article(param.type_name()),
                param.value.to_python()
            ),
            format!(
                "a parameter keeps the type of its default; write e.g. `-p {name}={}`",
                param.value.to_python().trim_matches('\'')
            ),
        )
    })?;
    Ok((name.to_string(), value))
}

/// Converts text to the type of `like`; the error says what was expected.
pub fn convert(like: &PipelineValue, raw: &str) -> Result<PipelineValue, &'static str> {
    let t = raw.trim();
    match like {
        PipelineValue::Int(_) => {
            if let Ok(i) = t.replace('_', "").parse::<i64>() {
                return Ok(PipelineValue::Int(i));
            }
            // `3.0` is an int written as a float; accept it when exact.
            match t.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(PipelineValue::Int(f as i64)),
                _ => Err("an integer"),
            }
        }
        PipelineValue::Float(_) => match t.replace('_', "").parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(PipelineValue::Float(f)),
            _ => Err("a finite number"),
        },
        PipelineValue::Bool(_) => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(PipelineValue::Bool(true)),
            "false" | "0" | "no" => Ok(PipelineValue::Bool(false)),
            _ => Err("true or false"),
        },
        PipelineValue::Str(_) => Ok(PipelineValue::Str(raw.to_string())),
    }
}

fn article(type_name: &str) -> &'static str {
    match type_name {
        "int" => "an int",
        "float" => "a float",
        "bool" => "a bool",
        _ => "a str",
    }
}
