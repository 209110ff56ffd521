//! `kale dashboard` and the plots, against stores that real tunes wrote: the JSON
//! endpoints over HTTP on loopback, the live event stream, the page in headless
//! Chromium, and SVG/PNG files from `kale experiments plot|compare`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{C, kale, kale_with_python, succeed, write_notebook};

/// Objective peaks at x = 3, y = "b"; x > 5.5 fails at a known line; every trial
/// prints three intermediate `score=` lines.
fn notebook(dir: &Path) -> PathBuf {
    write_notebook(
        dir,
        "quad.ipynb",
        &[
            C::Code(&["imports"], "import math"),
            C::Code(&["pipeline-parameters"], "x = 0.0\ny = 'a'"),
            C::Code(
                &["step:prepare"],
                "offsets = {'a': 1.0, 'b': 0.0, 'c': 2.0}",
            ),
            C::Code(
                &["step:score", "prev:prepare"],
                "for i in range(3):\n    print(f'score={-(x - 3) ** 2 - offsets[y] - 0.1 * (2 - i)}')\nif x > 5.5:\n    raise ValueError('x too large')\nscore = -(x - 3) ** 2 - offsets[y]",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    )
}

fn tune(nb: &Path, name: &str, algorithm: &str, trials: &str) {
    succeed(kale_with_python().arg("tune").arg(nb).args([
        "--objective",
        "score",
        "--param",
        "x=double:0..6",
        "--param",
        "y=categorical:a,b,c",
        "--algorithm",
        algorithm,
        "--max-trials",
        trials,
        "--max-failed",
        trials,
        "--parallel",
        "2",
        "--seed",
        "3",
        "--name",
        name,
    ]));
}

/// A running `kale dashboard`, killed on drop: its base URL, and the token after
/// `#token=` in the address it printed.
struct Server {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let bin = assert_cmd::cargo::cargo_bin("kale");
    let mut child = Command::new(bin)
        .arg("dashboard")
        .arg(dir)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (url, token) = line
        .trim()
        .split_once("#token=")
        .unwrap_or_else(|| panic!("no token in {line:?}"));
    assert!(url.starts_with("http://127.0.0.1:"), "printed {line:?}");
    assert_eq!(token.len(), 32, "{line:?}");
    Server {
        child,
        url: url.to_string(),
        token: token.to_string(),
    }
}

/// GET over HTTP/1.1 on loopback: (status, content type, body).
fn get(url: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut resp = agent.get(url).call().unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, kind, resp.body_mut().read_to_string().unwrap())
}

fn get_json(url: &str) -> Value {
    let (status, kind, body) = get(url);
    assert_eq!(status, 200, "{url}: {body}");
    assert!(kind.starts_with("application/json"), "{url}: {kind}");
    serde_json::from_str(&body).unwrap()
}

fn show(dir: &Path, name: &str) -> Value {
    let out = succeed(
        kale()
            .args(["experiments", "show", name, "--json", "--dir"])
            .arg(dir),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_endpoints_serve_what_the_store_holds_and_stream_changes() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    tune(&nb, "quad-tpe", "tpe", "14");
    let stored = show(dir.path(), "quad-tpe");
    let server = serve(dir.path());

    let list = get_json(&format!("{}api/experiments", server.url));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "quad-tpe");
    assert_eq!(list[0]["trials"]["total"], 14);
    assert_eq!(list[0]["best"]["trial"], stored["best"]);

    let doc = get_json(&format!("{}api/experiments/quad-tpe", server.url));
    assert_eq!(doc["trials"], stored["trials"]);
    assert_eq!(doc["best"]["number"], stored["best"]);
    let failed = doc["counts"]["failed"].as_u64().unwrap();
    let succeeded = doc["counts"]["succeeded"].as_u64().unwrap();
    assert_eq!(failed + succeeded, 14);
    // fANOVA over the succeeded trials, the same numbers `experiments show` prints.
    let imp = doc["importance"].as_array().expect("importance computed");
    assert_eq!(doc["importance"], stored["importance"]);
    let names: Vec<&str> = imp.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"x") && names.contains(&"y"), "{imp:?}");
    let sum: f64 = imp.iter().map(|p| p["importance"].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-9, "{imp:?}");
    assert_eq!(doc["space"][0]["name"], "x");
    assert_eq!(doc["space"][1]["values"], "a, b, c");
    // Best so far never gets worse.
    let bsf: Vec<f64> = doc["best_so_far"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert!(bsf.windows(2).all(|w| w[1] >= w[0]), "{bsf:?}");

    // A trial: its step logs and intermediate values.
    let best = stored["best"].as_i64().unwrap();
    let t = get_json(&format!(
        "{}api/experiments/quad-tpe/trials/{best}",
        server.url
    ));
    assert_eq!(t["trial"]["intermediate"].as_array().unwrap().len(), 3);
    let score = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "score")
        .expect("score step");
    assert_eq!(score["status"], "succeeded");
    assert_eq!(
        score["stdout"].as_str().unwrap().matches("score=").count(),
        3
    );
    if let Some(f) = doc["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"] == "failed")
    {
        let n = f["number"].as_i64().unwrap();
        let t = get_json(&format!(
            "{}api/experiments/quad-tpe/trials/{n}",
            server.url
        ));
        let step = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "score")
            .unwrap();
        assert_eq!(step["error"]["type"], "ValueError");
        assert_eq!(step["error"]["line"], 4);
        assert!(
            f["error"].as_str().unwrap().contains("cell 4, line 4"),
            "{f}"
        );
    }

    // Unknown names are 404 with a JSON error; plots are SVG.
    let (status, _, body) = get(&format!("{}api/experiments/nope", server.url));
    assert_eq!(status, 404);
    assert!(body.contains("no experiment named `nope`"), "{body}");
    for kind in ["history", "importance", "parallel", "slice", "contour"] {
        let (status, ctype, body) = get(&format!("{}plot/quad-tpe/{kind}.svg", server.url));
        assert_eq!((status, ctype.as_str()), (200, "image/svg+xml"), "{kind}");
        assert!(body.contains(&format!("data-plot=\"{kind}\"")), "{kind}");
    }
    let (status, _, _) = get(&format!("{}plot/quad-tpe/pie.svg", server.url));
    assert_eq!(status, 404);

    // The event stream reports a tune that starts while the dashboard runs, and
    // the new experiment shows up in the list.
    let addr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut sse = TcpStream::connect(addr).unwrap();
    write!(
        sse,
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = [0u8; 512];
    let n = sse.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_string();
    assert!(head.contains("text/event-stream"), "{head}");
    tune(&nb, "quad-random", "random", "4");
    let start = Instant::now();
    let mut seen = String::new();
    while !seen.contains("event: change") && start.elapsed() < Duration::from_secs(60) {
        let mut buf = [0u8; 1024];
        match sse.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(seen.contains("event: change"), "{seen:?}");
    let list = get_json(&format!("{}api/experiments", server.url));
    assert_eq!(list.as_array().unwrap().len(), 2);
    let cmp = get_json(&format!(
        "{}api/compare?e=quad-tpe&e=quad-random",
        server.url
    ));
    assert_eq!(cmp[0]["name"], "quad-tpe");
    assert_eq!(cmp[1]["name"], "quad-random");
    assert_eq!(cmp[1]["values"].as_array().unwrap().len(), 4);
    let (status, kind, page) = get(&format!("{}compare?e=quad-tpe&e=quad-random", server.url));
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"));
    assert!(page.contains("data-plot=\"history\""));
}

/// The number in a trial mark's or row's `data-trial` (the page's JavaScript answers
/// with JSON values).
fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The zoom area's data range along `axis` of the plot of `kind`.
fn range(b: &mut Browser, kind: &str, axis: &str) -> (f64, f64) {
    let v = b.eval(&format!(
        "document.querySelector('.plot[data-kind={kind}] .zoom-area').getAttribute('data-{axis}')"
    ));
    let parts: Vec<f64> = v
        .as_str()
        .unwrap()
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    (parts[0], parts[1])
}

/// Hover, click-through, zoom and pan, the parameter pickers, the trial filter, notes,
/// and every plot of the experiment page, with real mouse events in headless Chromium
/// on an experiment a real tune wrote.
#[test]
fn the_experiment_page_is_interactive_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    tune(&nb, "quad-tpe", "tpe", "14");
    tune(&nb, "quad-random", "random", "8");
    let stored = show(dir.path(), "quad-tpe");
    let best = stored["best"].as_i64().unwrap();
    let best_value = stored["trials"][best as usize]["value"].as_f64().unwrap();
    let server = serve(dir.path());
    let mut b = Browser::launch(1400, 1000);
    b.open(&format!("{}e/quad-tpe#token={}", server.url, server.token));
    // The token moved from the address into the browser's storage.
    b.wait_for("location.hash === ''", "the token to leave the address");
    // Plots fill the page: drawn at the width of their box (the first visit is
    // redrawn once the script has told the server the width).
    b.wait_for(
        "(function(){ var p = document.querySelector('.plot[data-kind=history]'); var w = parseFloat(p.querySelector('svg').getAttribute('width')); return Math.abs(w - p.clientWidth) < 0.08 * p.clientWidth && p.clientWidth > 1200; })()",
        "the history plot to fill the page's width",
    );
    for id in [
        "best",
        "history",
        "importance",
        "parallel",
        "slice",
        "contour",
        "timeline",
        "intermediate",
        "trial-table",
        "notes",
    ] {
        assert_eq!(
            b.eval(&format!("!!document.getElementById('{id}')")),
            json!(true),
            "{id}"
        );
    }
    assert_eq!(
        b.eval("document.querySelector('[data-best]').getAttribute('data-best')"),
        json!(best_value.to_string())
    );
    // Every trial has its mark in the history, the timeline and (all of them report
    // intermediate values) the intermediate plot; the slice plot labels its y axis.
    for kind in ["history", "timeline", "intermediate"] {
        let n = b.eval(&format!(
            "document.querySelectorAll('.plot[data-kind={kind}] [data-trial]').length"
        ));
        assert_eq!(n, json!(14), "{kind}");
    }
    assert_eq!(
        b.eval("document.querySelector('.plot[data-kind=slice] .y-label').textContent"),
        json!("score")
    );
    b.keep_screenshot(None, "dashboard.png");

    // Hover: the best trial's mark shows its tooltip.
    let mark = format!(".plot[data-kind=history] [data-trial='{best}']");
    let at = b.centre(&mark);
    b.hover(at);
    let text = b.wait_for(
        "!document.getElementById('tip').hidden && document.getElementById('tip').textContent",
        "the tooltip",
    );
    assert!(
        text.as_str()
            .unwrap()
            .starts_with(&format!("trial {best} · succeeded · score=")),
        "{text}"
    );
    b.keep_screenshot(Some("#history"), "dashboard-history.png");

    zoom_and_pan(&mut b);
    pickers(&mut b);
    let trials = stored["trials"].as_array().unwrap();
    filter(&mut b, trials);
    notes(&mut b, &server);
    // Click-through: the best trial's mark opens its page.
    // The note written just before may reach the page's event stream after it opened and
    // reload it under the click (a loaded machine): a click that led nowhere is repeated.
    let on_trial_page = format!(
        "location.pathname === '/e/quad-tpe/t/{best}' && document.documentElement.getAttribute('data-app') === 'ready'"
    );
    let mut opened = false;
    for _ in 0..3 {
        b.open(&format!("{}e/quad-tpe", server.url));
        let at = b.centre(&mark);
        b.click(at);
        if b.wait_up_to(&on_trial_page, Duration::from_secs(20))
            .is_some()
        {
            opened = true;
            break;
        }
    }
    assert!(opened, "clicking trial {best}'s mark never opened its page");
    b.wait_for(
        "document.querySelector('.plot[data-kind=intermediate] [data-trial]')",
        "the trial's intermediate values",
    );
    b.keep_screenshot(None, "dashboard-trial.png");

    // Compare: histories and empirical distributions overlaid, a trial's mark opens it.
    b.open(&format!("{}compare?e=quad-tpe&e=quad-random", server.url));
    assert_eq!(
        b.eval("document.querySelectorAll('.plot[data-kind=edf] .edf-line').length"),
        json!(2)
    );
    assert_eq!(
        b.eval("document.querySelectorAll('.plot[data-kind=history] .best-line').length"),
        json!(2)
    );
    b.keep_screenshot(Some("#edf"), "dashboard-edf.png");
    let at = b.centre(".plot[data-kind=edf] [data-exp=quad-random][data-trial]");
    b.click(at);
    b.wait_for(
        "location.pathname.indexOf('/e/quad-random/t/') === 0",
        "the compared trial's page",
    );
}

/// Box zoom, shift-drag pan, wheel zoom and double-click reset on the history.
fn zoom_and_pan(b: &mut Browser) {
    // Zoom: a box dragged over the history's left half narrows both axes to it; a
    // shift-drag pans; the wheel zooms out; a double-click resets.
    let (x0, x1) = range(b, "history", "x");
    let [l, t, w, h] = b.rect(".plot[data-kind=history] .zoom-area");
    let (sx, sy) = (
        b.eval("scrollX").as_f64().unwrap(),
        b.eval("scrollY").as_f64().unwrap(),
    );
    let (l, t) = (l - sx, t - sy);
    b.drag(
        (l + 0.1 * w, t + 0.05 * h),
        (l + 0.5 * w, t + 0.95 * h),
        false,
    );
    b.wait_for(
        "location.search.indexOf('history.x=') >= 0",
        "the zoom to reach the address",
    );
    b.wait_for(
        "!document.querySelector('#history button.reset').hidden",
        "the reset button",
    );
    let (z0, z1) = range(b, "history", "x");
    assert!(
        z0 > x0 && z1 < x1 && (z1 - z0) < 0.5 * (x1 - x0),
        "zoomed {z0}..{z1} of {x0}..{x1}"
    );
    b.keep_screenshot(Some("#history"), "dashboard-zoom.png");
    let [l, t, w, h] = b.rect(".plot[data-kind=history] .zoom-area");
    let (sx, sy) = (
        b.eval("scrollX").as_f64().unwrap(),
        b.eval("scrollY").as_f64().unwrap(),
    );
    let (l, t) = (l - sx, t - sy);
    b.drag((l + 0.6 * w, t + 0.5 * h), (l + 0.4 * w, t + 0.5 * h), true);
    b.wait_for(&format!("(function(){{ var a = document.querySelector('.plot[data-kind=history] .zoom-area').getAttribute('data-x').split(' '); return parseFloat(a[0]) > {z0} + 1e-9; }})()"), "the pan to move the x range right");
    let (p0, p1) = range(b, "history", "x");
    assert!(
        ((p1 - p0) - (z1 - z0)).abs() < 1e-6 * (z1 - z0).max(1.0),
        "a pan keeps the width"
    );
    b.wheel((l + 0.5 * w, t + 0.5 * h), 300.0);
    b.wait_for(&format!("(function(){{ var a = document.querySelector('.plot[data-kind=history] .zoom-area').getAttribute('data-x').split(' '); return parseFloat(a[1]) - parseFloat(a[0]) > {} * 1.1; }})()", p1 - p0), "the wheel to zoom out");
    b.double_click((l + 0.5 * w, t + 0.5 * h));
    b.wait_for(
        &format!("location.search.indexOf('history.x=') < 0 && document.querySelector('.plot[data-kind=history] .zoom-area').getAttribute('data-x').split(' ')[1] === '{x1}'"),
        "the reset to the whole range",
    );
    assert_eq!(range(b, "history", "x"), (x0, x1));
}

/// The slice plot's parameter boxes and the contour's axis pickers.
fn pickers(b: &mut Browser) {
    // Pickers: the slice plot keeps the parameter ticked, the contour draws the two
    // picked (swapped from the default importance order).
    let at = b.centre("#slice input[name=slice][value=x]");
    b.click(at);
    b.wait_for(
        "document.querySelectorAll('.plot[data-kind=slice] .x-label').length === 1",
        "one slice panel",
    );
    assert_eq!(
        b.eval("document.querySelector('.plot[data-kind=slice] .x-label').textContent"),
        json!("x")
    );
    b.keep_screenshot(Some("#slice"), "dashboard-slice.png");
    b.eval("(function(){ var f = function(n, v){ var s = document.querySelector('select[name=' + n + ']'); s.value = v; s.dispatchEvent(new Event('change', {bubbles: true})); }; f('cx', 'y'); })()");
    b.wait_for("document.querySelector('.plot[data-kind=contour] svg text').textContent.indexOf('over y and x') >= 0", "the contour over y and x");
    b.keep_screenshot(Some("#contour"), "dashboard-contour.png");
    for id in ["importance", "parallel", "timeline", "intermediate"] {
        b.keep_screenshot(Some(&format!("#{id}")), &format!("dashboard-{id}.png"));
    }
}

/// The trial filter: conditions typed in, then the state boxes.
fn filter(b: &mut Browser, trials: &[Value]) {
    // The filter: typed conditions narrow the table and dim the others in the plots.
    let at = b.centre("input[name=where]");
    b.click(at);
    b.page("Input.insertText", json!({"text": "x<3"}));
    b.wait_for(
        "document.getElementById('match-count').getAttribute('data-active') === '1'",
        "the filter to apply",
    );
    let rows = b.eval("Array.prototype.map.call(document.querySelectorAll('#trial-table tbody tr'), function (r) { return r.getAttribute('data-trial'); })");
    let expect: Vec<i64> = trials
        .iter()
        .filter(|t| t["params"]["x"].as_f64().unwrap() < 3.0)
        .map(|t| t["number"].as_i64().unwrap())
        .collect();
    let mut got: Vec<i64> = rows.as_array().unwrap().iter().map(int).collect();
    got.sort();
    assert_eq!(got, expect);
    let dimmed = b.eval("document.querySelectorAll('.plot[data-kind=history] .dim').length");
    assert_eq!(dimmed, json!(14 - expect.len()));
    b.keep_screenshot(Some("#trials"), "dashboard-filter.png");
    // The state boxes: failed trials only, once the conditions are cleared.
    b.eval("(function(){ var i = document.querySelector('input[name=where]'); i.value = ''; i.dispatchEvent(new Event('input', {bubbles: true})); })()");
    b.wait_for("location.search.indexOf('where=') < 0 && document.getElementById('match-count').getAttribute('data-active') === '0'", "the conditions to clear");
    let at = b.centre("input[name=state][value=failed]");
    b.click(at);
    let failed = trials.iter().filter(|t| t["status"] == "failed").count();
    assert!(failed > 0, "x > 5.5 fails: some trial should have");
    b.wait_for(
        &format!("document.getElementById('match-count').getAttribute('data-active') === '1' && document.querySelectorAll('#trial-table tbody tr').length === {failed} && document.querySelectorAll('#trial-table tbody .s-failed').length === {failed}"),
        "the failed trials alone",
    );
}

/// A note written in the page with the kept token; a wrong token is refused.
fn notes(b: &mut Browser, server: &Server) {
    // A note, with the token the browser keeps; a wrong token is refused.
    let at = b.centre("#note-text");
    b.click(at);
    b.page(
        "Input.insertText",
        json!({"text": "TPE run; x beyond 5.5 fails by design"}),
    );
    let at = b.centre("#note-save");
    b.click(at);
    b.wait_for(
        "document.getElementById('note-status').textContent === 'saved'",
        "the note to be saved",
    );
    let doc = get_json(&format!("{}api/experiments/quad-tpe", server.url));
    assert_eq!(
        doc["notes"]["experiment"],
        "TPE run; x beyond 5.5 fails by design"
    );
    let refused = post_note(
        &format!("{}api/experiments/quad-tpe/note", server.url),
        "0123",
        "no",
    );
    assert_eq!(refused, 401);
}

/// POSTs a note with a token; the HTTP status.
fn post_note(url: &str, token: &str, text: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(json!({"text": text}))
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn a_multi_objective_page_picks_objectives_and_shows_the_front_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "two.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0.0"),
            C::Code(&["step:score"], "score = -(x - 3) ** 2\nsize = x * 10"),
            C::Code(&["pipeline-metrics"], "print(score)\nprint(size)"),
        ],
        None,
    );
    succeed(kale_with_python().arg("tune").arg(&nb).args([
        "--objective",
        "score",
        "--objective",
        "size:minimize",
        "--constraint",
        "size<=45",
        "--param",
        "x=double:0..6",
        "--algorithm",
        "random",
        "--max-trials",
        "12",
        "--parallel",
        "2",
        "--seed",
        "5",
        "--name",
        "two",
    ]));
    let stored = show(dir.path(), "two");
    let front: Vec<i64> = stored["pareto_front"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_i64().unwrap())
        .collect();
    assert!(!front.is_empty());
    // Importance for each objective.
    let by = &stored["importance_by_objective"];
    assert!(by["score"].is_array() && by["size"].is_array(), "{by}");
    let text = |args: &[&str]| {
        String::from_utf8(succeed(kale().args(args).arg("-C").arg(dir.path())).stdout).unwrap()
    };
    let shown = text(&["experiments", "show", "two"]);
    assert!(
        shown.contains("importance of score (fANOVA)")
            && shown.contains("importance of size (fANOVA)"),
        "{shown}"
    );
    // compare: the front's size, and the best on the objective asked for.
    let best_size = stored["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "succeeded" && t["values"][1].as_f64().unwrap() <= 45.0)
        .map(|t| t["values"][1].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    let cmp = text(&[
        "experiments",
        "compare",
        "two",
        "two",
        "--objective",
        "size",
    ]);
    assert!(
        cmp.contains("minimize size") && cmp.contains(&format!("{} trials", front.len())),
        "{cmp}"
    );
    assert!(
        cmp.contains(&format!("{best_size:.6}")),
        "best size {best_size}: {cmp}"
    );
    let server = serve(dir.path());
    let mut b = Browser::launch(1400, 1000);
    b.open(&format!("{}e/two", server.url));
    assert_eq!(
        b.eval("!!document.getElementById('front') && !document.getElementById('best')"),
        json!(true)
    );
    let rows = b.eval("Array.prototype.map.call(document.querySelectorAll('#front-table tbody tr'), function (r) { return r.getAttribute('data-trial'); })");
    let mut got: Vec<i64> = rows.as_array().unwrap().iter().map(int).collect();
    got.sort();
    assert_eq!(got, front);
    assert_eq!(
        b.eval("document.querySelectorAll('.plot[data-kind=pareto] .front').length"),
        json!(front.len())
    );
    assert_eq!(
        b.eval("document.querySelector('.plot[data-kind=pareto] .y-label').textContent"),
        json!("size (minimize, lower is better)")
    );
    // The parallel plot shows the front, not a best trial; infeasible trials are marked
    // in every plot that draws them.
    let legend = b.eval("Array.prototype.map.call(document.querySelectorAll('.plot[data-kind=parallel] .legend'), function (t) { return t.textContent; }).join('|')");
    let legend = legend.as_str().unwrap();
    assert!(
        legend.contains(&format!("Pareto front ({})", front.len()))
            && !legend.contains("best trial"),
        "{legend}"
    );
    let infeasible = stored["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "succeeded" && t["values"][1].as_f64().unwrap() > 45.0)
        .count();
    assert!(infeasible > 0, "the seed gives infeasible trials");
    for kind in ["history", "parallel", "slice", "timeline"] {
        let text = b.eval(&format!(
            "document.querySelector('.plot[data-kind={kind}] svg').textContent"
        ));
        assert!(
            text.as_str()
                .unwrap()
                .contains(&format!("infeasible ({infeasible}")),
            "{kind}: {text}"
        );
    }
    // The objective picker: every plot of the page redraws for `size`.
    assert!(
        b.eval("document.querySelector('.plot[data-kind=history] svg text').textContent")
            .as_str()
            .unwrap()
            .contains("score (objective 1 of 2) by trial")
    );
    b.eval("(function(){ var s = document.querySelector('select[name=objective]'); s.value = 'size'; s.dispatchEvent(new Event('change', {bubbles: true})); })()");
    b.wait_for("document.querySelector('.plot[data-kind=history] svg text').textContent.indexOf('size (objective 2 of 2) by trial') >= 0", "the history of size");
    let title =
        b.eval("document.querySelector('.plot[data-kind=importance] svg text').textContent");
    assert!(
        title.as_str().unwrap().contains("importance for size"),
        "{title}"
    );
    b.keep_screenshot(Some("#pareto"), "dashboard-pareto.png");
    // The Pareto plot's own pickers swap its axes.
    b.eval("(function(){ var s = document.querySelector('select[name=px]'); s.value = 'size'; s.dispatchEvent(new Event('change', {bubbles: true})); })()");
    b.wait_for("document.querySelector('.plot[data-kind=pareto] .x-label').textContent.indexOf('size (minimize') === 0 && document.querySelector('.plot[data-kind=pareto] .y-label').textContent.indexOf('score (maximize') === 0", "the Pareto plot with size on x");
}

/// During a tune with `--dashboard` the page's counts move by themselves (live
/// updates) and always add up; after the tune it keeps serving until Ctrl-C.
#[test]
fn tune_dashboard_shows_live_counts_and_serves_on_until_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "slow.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["pipeline-parameters"], "x = 0.0"),
            C::Code(
                &["step:score"],
                "time.sleep(1.0)\nif x > 5.0:\n    raise ValueError('too big')\nscore = -(x - 3) ** 2",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let bin = assert_cmd::cargo::cargo_bin("kale");
    let mut child = Command::new(bin)
        .env("KALE_PYTHON", crate::support::python())
        .arg("tune")
        .arg(&nb)
        .args([
            "--objective",
            "score",
            "--param",
            "x=double:0..6",
            "--algorithm",
            "random",
            "--seed",
            "1",
            "--max-trials",
            "8",
            "--max-failed",
            "8",
            "--parallel",
            "2",
            "--name",
            "live",
            "--dashboard",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_line = |prefix: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(120))
                .expect("tune stopped talking");
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
    };
    let url = wait_line("dashboard: ");
    assert!(url.contains("/e/live#token="), "{url}");
    let mut b = Browser::launch(1400, 1000);
    b.open(&url);
    let counts = "(function(){ var c = document.querySelector('.counts'); return c && [c.getAttribute('data-finished'), c.getAttribute('data-running'), c.getAttribute('data-failed'), c.getAttribute('data-max'), c.textContent, parseFloat(document.querySelector('.wall').getAttribute('data-wall'))]; })()";
    // While it runs: trials running, the counts consistent, the wall time real.
    let during = b.wait_for(
        &format!(
            "(function(){{ var v = {counts}; return v && +v[1] > 0 && +v[0] > 0 ? v : null; }})()"
        ),
        "a page showing finished and running trials",
    );
    let v = during.as_array().unwrap();
    let (finished, running, max) = (int(&v[0]), int(&v[1]), int(&v[3]));
    assert_eq!(max, 8);
    assert!(running <= 2 && finished + running <= max, "{during}");
    assert!(
        v[4].as_str()
            .unwrap()
            .starts_with(&format!("{finished} of 8 finished · {running} running")),
        "{during}"
    );
    assert!(
        v[5].as_f64().unwrap() > 0.0,
        "wall time while running: {during}"
    );
    b.keep_screenshot(Some("#facts"), "dashboard-live.png");
    // The tune ends; the server stays, and the open page shows the end by itself.
    let still = wait_line("dashboard: still serving ");
    assert!(still.ends_with("Ctrl-C to stop"), "{still}");
    let end = b.wait_for(&format!("(function(){{ var v = {counts}; return v && +v[0] === 8 && +v[1] === 0 ? v : null; }})()"), "the page to show the finished tune");
    let failed = int(&end.as_array().unwrap()[2]);
    let stored = show(dir.path(), "live");
    let stored_failed = stored["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "failed")
        .count() as i64;
    assert_eq!(failed, stored_failed);
    assert!(stored["experiment"]["wall_seconds"].as_f64().unwrap() > 0.0);
    let (status, _, _) = get(url.split('#').next().unwrap());
    assert_eq!(status, 200);
    // Ctrl-C ends it, with the tune's own exit status.
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// Width and height of a PNG, `None` unless the bytes start like one.
fn png_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.len() < 24 || &b[..8] != b"\x89PNG\r\n\x1a\n" || &b[12..16] != b"IHDR" {
        return None;
    }
    let be = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    Some((be(&b[16..20]), be(&b[20..24])))
}

#[test]
fn plots_are_written_as_svg_or_png_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    tune(&nb, "a", "random", "6");
    tune(&nb, "b", "tpe", "6");
    for kind in [
        "history",
        "importance",
        "parallel",
        "slice",
        "contour",
        "edf",
        "timeline",
        "intermediate",
    ] {
        let png = dir.path().join(format!("{kind}.png"));
        succeed(
            kale()
                .args(["experiments", "plot", "a", "--kind", kind, "-o"])
                .arg(&png)
                .arg("-C")
                .arg(dir.path()),
        );
        let bytes = std::fs::read(&png).unwrap();
        let (w, h) = png_size(&bytes).unwrap_or_else(|| panic!("{kind}: not a PNG"));
        assert!(w >= 1000 && h >= 300, "{kind}: {w}x{h}");
        let svg = dir.path().join(format!("{kind}.svg"));
        succeed(
            kale()
                .args(["experiments", "plot", "a", "--kind", kind, "-o"])
                .arg(&svg)
                .arg("-C")
                .arg(dir.path()),
        );
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    }
    // The new kinds draw what they are about: a bar per trial, a curve per trial, a
    // step per value.
    let text =
        |kind: &str| std::fs::read_to_string(dir.path().join(format!("{kind}.svg"))).unwrap();
    assert_eq!(text("timeline").matches("<rect class=\"trial ").count(), 6);
    assert_eq!(
        text("intermediate").matches("<g class=\"trial\"").count(),
        6
    );
    assert!(text("edf").contains("class=\"edf-line\""));
    // --params picks the slice panels and the contour's axes; the edf overlays two.
    let plot = |args: &[&str], file: &str| {
        let out = dir.path().join(file);
        let mut cmd = kale();
        cmd.args(["experiments", "plot"])
            .args(args)
            .arg("-o")
            .arg(&out)
            .arg("-C")
            .arg(dir.path());
        (cmd.output().unwrap(), out)
    };
    let (o, f) = plot(&["a", "--kind", "slice", "--params", "y"], "s.svg");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(f)
            .unwrap()
            .matches("class=\"x-label\"")
            .count(),
        1
    );
    let (o, f) = plot(&["a", "--kind", "contour", "--params", "y,x"], "c.svg");
    assert!(o.status.success());
    assert!(
        std::fs::read_to_string(f)
            .unwrap()
            .contains("score over y and x")
    );
    let (o, f) = plot(&["a", "b", "--kind", "edf"], "e.svg");
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(f)
            .unwrap()
            .matches("class=\"edf-line\"")
            .count(),
        2
    );
    // Flags that do not fit are refused with exit status 2, naming what would.
    for (args, says) in [
        (
            &["a", "--kind", "slice", "--params", "nope"][..],
            "no parameter `nope`",
        ),
        (
            &["a", "--kind", "contour", "--params", "x"][..],
            "two --params",
        ),
        (
            &["a", "--kind", "timeline", "--params", "x"][..],
            "--params applies to",
        ),
        (&["a", "--objective", "nope"][..], "no objective `nope`"),
        (
            &["a", "b", "--kind", "slice"][..],
            "history and edf overlay several",
        ),
    ] {
        let (o, f) = plot(args, "refused.svg");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!f.exists());
    }
    // An extension that names no format written is refused, not silently SVG.
    let out = kale()
        .args(["experiments", "plot", "a", "-o"])
        .arg(dir.path().join("a.pdf"))
        .arg("-C")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("a.pdf").exists());
    // Compare overlays both histories, one legend entry each.
    let cmp = dir.path().join("cmp.svg");
    succeed(
        kale()
            .args(["experiments", "compare", "a", "b", "--plot"])
            .arg(&cmp)
            .arg("-C")
            .arg(dir.path()),
    );
    let svg = std::fs::read_to_string(&cmp).unwrap();
    assert_eq!(svg.matches("class=\"best-line\"").count(), 2);
    assert!(svg.contains(">a</text>") && svg.contains(">b</text>"));
}
