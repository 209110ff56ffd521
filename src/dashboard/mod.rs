//! `kale dashboard`: a web view of an experiment store, read-only but for notes.
//!
//! Pages are rendered on the server (HTML with the plots of [`crate::render::svg`] inline), so
//! they work without JavaScript and look like the files `kale experiments plot`
//! writes. A small embedded script makes the plots interactive (tooltips,
//! click-through to a trial, zoom and pan by asking for the plot again with ranges,
//! pickers that redraw at once) and keeps the open page live: it listens to
//! `/api/events` (server-sent events, one per committed change to the store, found by
//! polling SQLite's `data_version`) and swaps in the re-rendered page. Every page has
//! a JSON twin under `/api/`. Nothing is fetched from elsewhere: the stylesheet and
//! the script are compiled into the binary.
//!
//! The one write is a note on an experiment or a trial (`POST …/note`), and only with
//! the token this server made at start (`Authorization: Bearer TOKEN`): the address
//! kale prints carries it after `#token=`, which browsers never send to a server.

pub mod filter;
mod html;
mod notes;
pub mod view;

use crate::store::TrialStatus;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::exec::manifest::Manifest;
use crate::query;
use crate::render::svg::{self, Kind};
use crate::store::{Experiment, Store, TrialRow};

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// Most of a step log a page shows (the end of it, where errors are).
const LOG_TAIL_BYTES: u64 = 64 * 1024;

struct AppState {
    db: PathBuf,
    /// Bumped on every change to the store; `/api/events` streams it.
    version: watch::Receiver<u64>,
    /// What writing a note takes.
    token: String,
}

type Shared = Arc<AppState>;

/// A bound, not yet serving, dashboard.
pub struct Dashboard {
    listener: tokio::net::TcpListener,
    router: Router,
    pub addr: SocketAddr,
    token: String,
}

/// How long a client may take to send a request's headers before its connection is
/// closed (a half-open connection would otherwise hold a task for ever).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Host` names the dashboard answers to. A web page the user visits elsewhere can
/// point a name of its own at 127.0.0.1 (DNS rebinding) and read the dashboard through
/// it: such a request carries that name, so only the dashboard's own names are
/// answered. An IP address is always accepted (rebinding needs a name), and so are
/// `localhost`, the `--host` the user chose, and this machine's host name.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    pub fn for_host(host: &str) -> AllowedHosts {
        let mut names = vec!["localhost".to_string()];
        if host.parse::<std::net::IpAddr>().is_err() {
            names.push(host.to_ascii_lowercase());
        }
        if let Some(own) = own_host_name() {
            names.push(own.to_ascii_lowercase());
        }
        AllowedHosts { names }
    }

    /// Whether a request with this `Host` header is for us.
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(header) = header else {
            return false;
        };
        let host = header.trim().to_ascii_lowercase();
        // `[::1]:8765`, `127.0.0.1:8765`, `name:8765`, or without the port.
        let name = if let Some(rest) = host.strip_prefix('[') {
            match rest.split_once(']') {
                Some((ip, _)) => return ip.parse::<std::net::Ipv6Addr>().is_ok(),
                None => return false,
            }
        } else {
            host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n)
        };
        let name = name.trim_end_matches('.');
        name.parse::<std::net::Ipv4Addr>().is_ok()
            || self
                .names
                .iter()
                .any(|n| n == name || name.strip_suffix(".localhost").is_some() && n == "localhost")
    }
}

fn own_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// Refuses requests for another host's name, and gives every response the usual
/// security headers: no sniffing, no framing, no referrer, scripts and styles from
/// the dashboard only.
async fn guard(
    State(allowed): State<Arc<AllowedHosts>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let mut response = if allowed.accepts(host) {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "kale dashboard: this server does not answer for host `{}`; open it as http://127.0.0.1:PORT/ (or the --host it was started with)\n",
                host.unwrap_or("")
            ),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    ] {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// Binds `host:port` (port 0 picks a free one) for the store at `db`. The store must
/// exist; it is only ever read.
pub async fn bind(db: &Path, host: &str, port: u16) -> std::io::Result<Dashboard> {
    if !db.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no experiment store at {}", db.display()),
        ));
    }
    let listener = tokio::net::TcpListener::bind((host, port)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(0u64);
    spawn_watcher(db.to_path_buf(), tx);
    let token = notes::new_token();
    let state = Arc::new(AppState {
        db: db.to_path_buf(),
        version: rx,
        token: token.clone(),
    });
    let allowed = Arc::new(AllowedHosts::for_host(host));
    Ok(Dashboard {
        listener,
        router: router(state).layer(axum::middleware::from_fn_with_state(allowed, guard)),
        addr,
        token,
    })
}

impl Dashboard {
    /// `http://host:port/`, with 127.0.0.1 for the unspecified address.
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}/", self.addr.port())
    }

    /// The address of `path` (under [`Dashboard::url`]) with the notes token after
    /// `#token=`: what kale prints for a person to open.
    pub fn url_with_token(&self, path: &str) -> String {
        format!("{}{path}#token={}", self.url(), self.token)
    }

    /// Serves until the task is dropped or the process ends. Each connection is
    /// served by hyper directly, with a header-read timeout.
    pub async fn serve(self) -> std::io::Result<()> {
        use hyper_util::rt::{TokioIo, TokioTimer};
        let service = hyper_util::service::TowerToHyperService::new(self.router);
        loop {
            let (stream, _) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait rather than spin or stop.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(page_index))
        .route("/e/{name}", get(page_experiment))
        .route("/e/{name}/t/{number}", get(page_trial))
        .route("/compare", get(page_compare))
        .route("/plot/{name}/{kind}", get(plot_svg))
        .route("/plot-compare.svg", get(plot_compare_history))
        .route("/plot-compare/{kind}", get(plot_compare_svg))
        .route(
            "/static/style.css",
            get(|| async { asset("text/css", STYLE) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
        .route("/api/experiments", get(api_experiments))
        .route("/api/experiments/{name}", get(api_experiment))
        .route("/api/experiments/{name}/trials/{number}", get(api_trial))
        .route("/api/compare", get(api_compare))
        .route("/api/events", get(api_events))
        .route("/api/experiments/{name}/note", post(notes::experiment_note))
        .route(
            "/api/experiments/{name}/trials/{number}/note",
            post(notes::trial_note),
        )
        .with_state(state)
}

/// Polls the store's `data_version` on its own thread (SQLite calls block) and
/// publishes a counter that moves whenever a tune commits something.
fn spawn_watcher(db: PathBuf, tx: watch::Sender<u64>) {
    std::thread::spawn(move || {
        let mut store = None;
        let mut last = None;
        let mut n = 0u64;
        loop {
            if tx.is_closed() {
                return;
            }
            if store.is_none() {
                store = Store::open_read_only(&db).ok();
            }
            if let Some(s) = &store {
                match s.data_version() {
                    Ok(v) if last != Some(v) => {
                        if last.is_some() {
                            n += 1;
                            let _ = tx.send(n);
                        }
                        last = Some(v);
                    }
                    Ok(_) => {}
                    Err(_) => store = None,
                }
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    });
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A failed request, as the page or JSON the client asked for.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
    json: bool,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.json {
            (self.status, Json(json!({"error": self.message}))).into_response()
        } else {
            (
                self.status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html::error_page(&self.message),
            )
                .into_response()
        }
    }
}

type Reply<T> = Result<T, Failure>;

/// Runs store reads off the async workers.
async fn read<T: Send + 'static>(
    state: &Shared,
    json: bool,
    f: impl FnOnce(&Store) -> Reply<T> + Send + 'static,
) -> Reply<T> {
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        let store = Store::open_read_only(&db).map_err(|e| Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
            json,
        })?;
        f(&store)
    })
    .await
    .map_err(|e| Failure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: e.to_string(),
        json,
    })?
}

fn load(store: &Store, name: &str, json: bool) -> Reply<(Experiment, Vec<TrialRow>)> {
    let fail = |status, message: String| Failure {
        status,
        message,
        json,
    };
    let e = store.experiment(name).map_err(|err| match err {
        crate::store::StoreError::NotFound(_) => fail(StatusCode::NOT_FOUND, err.to_string()),
        other => fail(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    })?;
    let trials = store
        .trials(e.id)
        .map_err(|err| fail(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    Ok((e, trials))
}

fn all(store: &Store, json: bool) -> Reply<Vec<(Experiment, Vec<TrialRow>)>> {
    let list = store.experiments().map_err(|e| Failure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: e.to_string(),
        json,
    })?;
    list.into_iter()
        .map(|e| {
            let t = store.trials(e.id).map_err(|err| Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: err.to_string(),
                json,
            })?;
            Ok((e, t))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// JSON documents (the pages show exactly these).

/// Trial counts by status.
pub fn counts(trials: &[TrialRow]) -> Value {
    let mut doc = serde_json::Map::new();
    doc.insert("total".into(), json!(query::counted(trials)));
    for &status in TrialStatus::ALL {
        doc.insert(status.as_str().into(), json!(query::count(trials, status)));
    }
    doc.insert("finished".into(), json!(query::finished(trials)));
    Value::Object(doc)
}

fn summary(e: &Experiment, trials: &[TrialRow]) -> Value {
    let best = crate::query::best_trial(trials, query::direction(e));
    json!({
        "name": e.spec.name,
        "notebook": e.spec.notebook,
        "status": e.status,
        "reason": e.reason,
        "objective": e.spec.objective,
        "direction": e.spec.direction,
        "algorithm": e.spec.algorithm,
        "max_trials": e.spec.max_trials,
        "trials": counts(trials),
        "best": best.map(|b| json!({"trial": b.number, "value": b.value, "params": b.params})),
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    })
}

/// Everything the experiment page shows: the experiment (its `wall_seconds_now`
/// counts the running session), its trials, notes, importance (per objective when
/// there are several), and the trials a filter matches.
pub fn experiment_doc(
    e: &Experiment,
    trials: &[TrialRow],
    notes: &BTreeMap<Option<i64>, String>,
    filter: &filter::Filter,
) -> Value {
    let multi = e.spec.objectives.len() > 1;
    let best = crate::query::best_trial(trials, query::direction(e)).filter(|_| !multi);
    let front: Option<Vec<i64>> = multi.then(|| {
        crate::query::pareto_front(trials, &e.spec.objectives)
            .iter()
            .map(|t| t.number)
            .collect()
    });
    let as_json = |r: &Result<Vec<kale_search::importance::ParamImportance>, String>| match r {
        Ok(i) => json!(i),
        Err(why) => json!({"unavailable": why}),
    };
    let by_objective: Option<serde_json::Map<String, Value>> = multi.then(|| {
        query::importance_by_objective(e, trials)
            .iter()
            .map(|(name, r)| (name.clone(), as_json(r)))
            .collect()
    });
    let trial_notes: serde_json::Map<String, Value> = notes
        .iter()
        .filter_map(|(k, v)| Some((k.as_ref()?.to_string(), json!(v))))
        .collect();
    json!({
        "experiment": e,
        "wall_seconds_now": e.wall_seconds_now(),
        "counts": counts(trials),
        "eta_seconds": query::eta_seconds(e, trials),
        "best": best,
        "pareto_front": front,
        "space": query::space_rows(e),
        "importance": as_json(&query::importance(e, trials)),
        "importance_by_objective": by_objective,
        "best_so_far": query::best_so_far(query::direction(e), trials),
        "notes": {"experiment": notes.get(&None), "trials": trial_notes},
        "matching": filter.is_active().then(|| filter.matching(trials, notes)),
        "filter_errors": filter.errors,
        "trials": trials,
    })
}

/// A trial's row plus what its run directory holds: the steps of its manifest and
/// the tail of each step's stdout and stderr.
pub fn trial_doc(trial: &TrialRow) -> Value {
    let mut steps = Vec::new();
    if let Some(dir) = trial.run_dir.as_deref().map(Path::new)
        && let Ok(m) = Manifest::read(dir)
    {
        for s in &m.steps {
            let log = |f: &str| tail(&crate::layout::step_dir(dir, &s.name).join(f));
            steps.push(json!({
                "name": s.name,
                "status": s.status.as_str(),
                "seconds": s.seconds,
                "error": s.error,
                "stdout": log("stdout.log"),
                "stderr": log("stderr.log"),
            }));
        }
    }
    json!({"trial": trial, "steps": steps})
}

/// The last [`LOG_TAIL_BYTES`] of a file, `None` when it is missing.
fn tail(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let skip = len.saturating_sub(LOG_TAIL_BYTES);
    f.seek(SeekFrom::Start(skip)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Some(if skip > 0 {
        format!("[… first {skip} bytes left out …]\n{text}")
    } else {
        text
    })
}

fn compare_names(query: &[(String, String)]) -> Vec<String> {
    query
        .iter()
        .filter(|(k, _)| k == "e")
        .flat_map(|(_, v)| v.split(',').map(str::trim).map(String::from))
        .filter(|v| !v.is_empty())
        .collect()
}

async fn api_experiments(State(s): State<Shared>) -> Reply<Json<Value>> {
    read(&s, true, |store| {
        let list = all(store, true)?;
        Ok(Json(json!(
            list.iter().map(|(e, t)| summary(e, t)).collect::<Vec<_>>()
        )))
    })
    .await
}

async fn api_experiment(
    State(s): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Reply<Json<Value>> {
    read(&s, true, move |store| {
        let (e, t) = load(store, &name, true)?;
        let notes = notes_of(store, &e, true)?;
        let filter = filter::Filter::from_query(&q, &filter_names(&e, &t));
        Ok(Json(experiment_doc(&e, &t, &notes, &filter)))
    })
    .await
}

fn notes_of(store: &Store, e: &Experiment, json: bool) -> Reply<BTreeMap<Option<i64>, String>> {
    store.notes(e.id).map_err(|err| Failure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: err.to_string(),
        json,
    })
}

/// What the trial filter's conditions may name: parameters and metrics.
fn filter_names(e: &Experiment, trials: &[TrialRow]) -> Vec<String> {
    let mut names: Vec<String> = query::space(e)
        .map(|s| s.parameters().iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    for t in trials {
        for k in t
            .params
            .as_object()
            .into_iter()
            .chain(t.metrics.as_object())
            .flat_map(|m| m.keys())
        {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

fn find_trial(trials: &[TrialRow], number: i64, json: bool) -> Reply<&TrialRow> {
    trials
        .iter()
        .find(|t| t.number == number)
        .ok_or_else(|| Failure {
            status: StatusCode::NOT_FOUND,
            message: format!("no trial {number}"),
            json,
        })
}

async fn api_trial(
    State(s): State<Shared>,
    UrlPath((name, number)): UrlPath<(String, i64)>,
) -> Reply<Json<Value>> {
    read(&s, true, move |store| {
        let (_, t) = load(store, &name, true)?;
        Ok(Json(trial_doc(find_trial(&t, number, true)?)))
    })
    .await
}

async fn api_compare(
    State(s): State<Shared>,
    Query(q): Query<Vec<(String, String)>>,
) -> Reply<Json<Value>> {
    let names = compare_names(&q);
    read(&s, true, move |store| {
        let mut out = Vec::new();
        for n in &names {
            let (e, t) = load(store, n, true)?;
            let mut doc = summary(&e, &t);
            doc["best_so_far"] = json!(query::best_so_far(query::direction(&e), &t));
            doc["values"] = json!(
                t.iter()
                    .map(|t| json!({"trial": t.number, "status": t.status, "value": t.value}))
                    .collect::<Vec<_>>()
            );
            out.push(doc);
        }
        Ok(Json(json!(out)))
    })
    .await
}

async fn api_events(
    State(s): State<Shared>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    // Changes from before this connection are in the page it came with: only later
    // ones are news (else every page opened after a change would reload at once).
    let mut rx = s.version.clone();
    rx.borrow_and_update();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let v = *rx.borrow_and_update();
        Some((Ok(Event::default().event("change").data(v.to_string())), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn html_page(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn svg(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page_index(State(s): State<Shared>) -> Reply<Response> {
    let db = s.db.display().to_string();
    read(&s, false, move |store| {
        Ok(html_page(html::index(&db, &all(store, false)?)))
    })
    .await
}

/// The page width the script keeps in a cookie (plots are drawn to fill it).
fn width(headers: &HeaderMap) -> Option<f64> {
    view::cookie_width(headers.get(header::COOKIE).and_then(|v| v.to_str().ok()))
}

async fn page_experiment(
    State(s): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Reply<Response> {
    let view = view::View::from_query(&q, width(&headers));
    read(&s, false, move |store| {
        let (e, trials) = load(store, &name, false)?;
        let notes = notes_of(store, &e, false)?;
        let filter = filter::Filter::from_query(&q, &filter_names(&e, &trials));
        let page = html::experiment::Page {
            e: &e,
            trials: &trials,
            notes: &notes,
            view: &view,
            filter: &filter,
        };
        Ok(html_page(html::experiment(&page)))
    })
    .await
}

async fn page_trial(
    State(s): State<Shared>,
    UrlPath((name, number)): UrlPath<(String, i64)>,
) -> Reply<Response> {
    read(&s, false, move |store| {
        let (e, t) = load(store, &name, false)?;
        let trial = find_trial(&t, number, false)?;
        let notes = notes_of(store, &e, false)?;
        let note = notes.get(&Some(number)).map(String::as_str);
        Ok(html_page(html::trial(&e, trial, &trial_doc(trial), note)))
    })
    .await
}

fn picked(store: &Store, names: &[String]) -> Reply<Vec<(Experiment, Vec<TrialRow>)>> {
    names.iter().map(|n| load(store, n, false)).collect()
}

async fn page_compare(
    State(s): State<Shared>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Reply<Response> {
    let names = compare_names(&q);
    let view = view::View::from_query(&q, width(&headers));
    read(&s, false, move |store| {
        let picked = picked(store, &names)?;
        let everything = all(store, false)?;
        Ok(html_page(html::compare(&everything, &picked, &view)))
    })
    .await
}

fn plot_kind(file: &str) -> Reply<Kind> {
    file.strip_suffix(".svg")
        .and_then(Kind::parse)
        .ok_or_else(|| Failure {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "no plot `{file}`; the plots are {} (.svg)",
                Kind::ALL.map(Kind::name).join(", ")
            ),
            json: false,
        })
}

/// One plot, drawn for the view the query describes (the page's own query string).
async fn plot_svg(
    State(s): State<Shared>,
    UrlPath((name, file)): UrlPath<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Reply<Response> {
    let kind = plot_kind(&file)?;
    let view = view::View::from_query(&q, width(&headers));
    read(&s, false, move |store| {
        let (e, t) = load(store, &name, false)?;
        if let Some(why) = svg::inapplicable(kind, &e) {
            return Err(Failure {
                status: StatusCode::NOT_FOUND,
                message: why,
                json: false,
            });
        }
        let mut opts = view.options(kind);
        if let Some(p) = q.iter().find(|(k, _)| k == "params") {
            opts.params =
                p.1.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect();
        }
        Ok(svg(svg::render(kind, &e, &t, &opts)))
    })
    .await
}

async fn plot_compare_svg(
    State(s): State<Shared>,
    UrlPath(file): UrlPath<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Reply<Response> {
    let kind = match plot_kind(&file)? {
        k @ (Kind::History | Kind::Edf) => k,
        _ => {
            return Err(Failure {
                status: StatusCode::NOT_FOUND,
                message: "the compare plots are history and edf".into(),
                json: false,
            });
        }
    };
    let names = compare_names(&q);
    let view = view::View::from_query(&q, width(&headers));
    read(&s, false, move |store| {
        let picked = picked(store, &names)?;
        Ok(svg(html::compare_plot(&picked, kind, &view)))
    })
    .await
}

async fn plot_compare_history(
    state: State<Shared>,
    q: Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Reply<Response> {
    plot_compare_svg(state, UrlPath("history.svg".into()), q, headers).await
}
