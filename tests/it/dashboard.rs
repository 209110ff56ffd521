//! `kale dashboard` and the plots, against stores that real tunes wrote: the JSON
//! endpoints over HTTP on loopback, the live event stream, the page in headless
//! Chromium, and SVG/PNG files from `kale experiments plot|compare`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// A running `kale dashboard`, killed on drop.
struct Server {
    child: Child,
    url: String,
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
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "printed {line:?}");
    Server { child, url }
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

/// The Chromium the browser test drives: `$KALE_TEST_CHROMIUM` (set by `.ci/run`
/// from `scripts/chromium`, which installs Debian's package), else `chromium`.
fn chromium() -> String {
    std::env::var("KALE_TEST_CHROMIUM")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "chromium".into())
}

fn headless(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stderr(Stdio::null());
    cmd
}

#[test]
fn the_experiment_page_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    tune(&nb, "quad-tpe", "tpe", "12");
    let stored = show(dir.path(), "quad-tpe");
    let best = stored["best"].as_i64().unwrap();
    let best_value = stored["trials"][best as usize]["value"].as_f64().unwrap();
    let server = serve(dir.path());
    let page = format!("{}e/quad-tpe", server.url);
    let profile = tempfile::tempdir().unwrap();
    let out = headless(profile.path())
        .arg("--dump-dom")
        .arg(&page)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e}\n  hint: scripts/chromium installs it",
                chromium()
            )
        });
    assert!(out.status.success(), "chromium failed");
    let dom = String::from_utf8_lossy(&out.stdout);
    // The history plot with its best-so-far line, a mark per trial, and the best
    // trial's card with its value.
    let history = dom
        .split("data-plot=\"history\"")
        .nth(1)
        .expect("history plot in the DOM");
    let history = &history[..history.find("</svg>").unwrap()];
    assert!(history.contains("class=\"best-line\""));
    assert_eq!(history.matches("<g class=\"trial ").count(), 12);
    assert!(dom.contains("id=\"best\""));
    assert!(
        dom.contains(&format!("data-best=\"{best_value}\"")),
        "best value {best_value} not on the page"
    );
    assert!(dom.contains(&format!(">trial {best}</a>")));
    for id in ["importance", "parallel", "slice", "contour", "trial-table"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id}");
    }
    // The embedded script ran.
    assert!(dom.contains("data-app=\"ready\""), "script did not run");

    // A screenshot of the same page: a real PNG of the window's size. With
    // KALE_UPDATE_SCREENSHOT=1 it becomes the README's docs/dashboard.png.
    let shot = dir.path().join("dashboard.png");
    let status = headless(profile.path())
        .arg("--window-size=1280,1700")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&page)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(png_size(&png), Some((1280, 1700)));
    if std::env::var("KALE_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join("dashboard.png"), &png).unwrap();
    }
}

#[test]
fn a_multi_objective_page_shows_the_front_and_the_pareto_plot_in_headless_chromium() {
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
        "10",
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
    let server = serve(dir.path());
    let profile = tempfile::tempdir().unwrap();
    let out = headless(profile.path())
        .arg("--dump-dom")
        .arg(format!("{}e/two", server.url))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("id=\"front\"") && !dom.contains("id=\"best\""));
    let table = dom.split("id=\"front-table\"").nth(1).expect("front table");
    let table = &table[..table.find("</table>").unwrap()];
    for n in &front {
        assert!(table.contains(&format!("data-trial=\"{n}\"")), "trial {n}");
    }
    let plot = dom
        .split("data-plot=\"pareto\"")
        .nth(1)
        .expect("pareto plot in the DOM");
    let plot = &plot[..plot.find("</svg>").unwrap()];
    assert_eq!(plot.matches("class=\"front\"").count(), front.len());
    assert!(plot.contains("size (minimize, lower is better)"));
    assert!(dom.contains("data-app=\"ready\""), "script did not run");
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
    for kind in ["history", "importance", "parallel", "slice", "contour"] {
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

#[test]
fn tune_dashboard_serves_the_running_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "slow.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["pipeline-parameters"], "x = 0.0"),
            C::Code(&["step:score"], "time.sleep(0.4)\nscore = -(x - 3) ** 2"),
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
            "--max-trials",
            "12",
            "--parallel",
            "1",
            "--name",
            "live",
            "--dashboard",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(u) = line.trim().strip_prefix("dashboard: ") {
            url = Some(u.to_string());
            break;
        }
        line.clear();
    }
    let url = url.expect("tune printed no dashboard URL");
    assert!(url.ends_with("/e/live"), "{url}");
    let base = url.trim_end_matches("e/live");
    // While the tune runs, the experiment is there and `running`.
    let doc = get_json(&format!("{base}api/experiments/live"));
    assert_eq!(doc["experiment"]["status"], "running");
    let (status, _, page) = get(&url);
    assert_eq!(status, 200);
    assert!(page.contains("data-plot=\"history\""));
    // Drain stderr so the tune never blocks on a full pipe, then let it finish.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = stderr.read_to_string(&mut sink);
    });
    assert!(child.wait().unwrap().success());
}
