//! Writing notes: the one change the dashboard makes to the store, with the token it
//! made at start.

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Json;
use serde_json::{Value, json};

use super::{Failure, Reply, Shared};
use crate::store::Store;

/// Notes longer than this are refused (a note, not a file).
const MAX_NOTE: usize = 64 * 1024;

/// 128 random bits in hex.
pub fn new_token() -> String {
    use rand::RngExt;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time independent of where the strings first differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn authorised(state: &Shared, headers: &HeaderMap) -> Reply<()> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if same(given.trim(), &state.token) {
        Ok(())
    } else {
        Err(fail(
            StatusCode::UNAUTHORIZED,
            "writing a note takes the token in the address kale dashboard printed (#token=…); it changes at every start".into(),
        ))
    }
}

fn fail(status: StatusCode, message: String) -> Failure {
    Failure {
        status,
        message,
        json: true,
    }
}

fn text_of(body: &Value) -> Reply<String> {
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "expected {\"text\": \"…\"}".into()))?;
    if text.len() > MAX_NOTE {
        return Err(fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a note holds at most {MAX_NOTE} bytes"),
        ));
    }
    Ok(text.to_string())
}

/// Opens the store for writing (upgrading an older one in place) and sets the note.
async fn write(
    state: &Shared,
    name: String,
    trial: Option<i64>,
    text: String,
) -> Reply<Json<Value>> {
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        let err =
            |e: crate::store::StoreError| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        let store = Store::open(&db).map_err(err)?;
        let e = store.experiment(&name).map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => fail(StatusCode::NOT_FOUND, e.to_string()),
            other => err(other),
        })?;
        if let Some(n) = trial {
            store
                .trial(e.id, n)
                .map_err(|_| fail(StatusCode::NOT_FOUND, format!("no trial {n}")))?;
        }
        store.set_note(e.id, trial, &text).map_err(err)?;
        Ok(Json(
            json!({"experiment": name, "trial": trial, "text": text}),
        ))
    })
    .await
    .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

pub async fn experiment_note(
    State(s): State<Shared>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Reply<Json<Value>> {
    authorised(&s, &headers)?;
    let text = text_of(&body)?;
    write(&s, name, None, text).await
}

pub async fn trial_note(
    State(s): State<Shared>,
    UrlPath((name, number)): UrlPath<(String, i64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Reply<Json<Value>> {
    authorised(&s, &headers)?;
    let text = text_of(&body)?;
    write(&s, name, Some(number), text).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_compared_whole() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b) && !same(&a, &a[..31]));
    }
}
