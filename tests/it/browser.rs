//! A headless Chromium driven over the Chrome DevTools Protocol, for the dashboard's
//! browser tests: real mouse events (hover, click, drag, wheel), the page's own
//! JavaScript, and screenshots. The protocol runs over a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by NUL on file descriptors 3 and
//! 4), so no WebSocket client is needed.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a wait for the page may take before the test fails (a hang guard, not a
/// speed requirement: the conditions waited for are what is tested).
const PATIENCE: Duration = Duration::from_secs(120);

/// The Chromium the browser tests drive: `$KALE_TEST_CHROMIUM` (set by `.ci/run`
/// from `scripts/chromium`, which installs Debian's package), else `chromium`.
pub fn chromium() -> String {
    std::env::var("KALE_TEST_CHROMIUM")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "chromium".into())
}

pub struct Browser {
    child: Child,
    to: File,
    from: BufReader<File>,
    next: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipe whose two ends are closed in children unless moved onto 3 or 4.
fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors it creates.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

impl Browser {
    /// Starts Chromium with one page of `width` × `height` CSS pixels.
    pub fn launch(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (to_read, to_write) = pipe();
        let (from_read, from_write) = pipe();
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
            "--remote-debugging-pipe",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way first, in case a pipe end already sits on 3 or 4.
                let a = libc::fcntl(to_read, libc::F_DUPFD_CLOEXEC, 10);
                let b = libc::fcntl(from_write, libc::F_DUPFD_CLOEXEC, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e}\n  hint: scripts/chromium installs it",
                chromium()
            )
        });
        // SAFETY: the parent's ends, owned from here on; the child's are closed.
        let (to, from) = unsafe {
            libc::close(to_read);
            libc::close(from_write);
            (File::from_raw_fd(to_write), File::from_raw_fd(from_read))
        };
        let mut b = Browser {
            child,
            to,
            from: BufReader::new(from),
            next: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.page("Page.enable", json!({}));
        b.page("Runtime.enable", json!({}));
        b.page(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        loop {
            let mut buf = Vec::new();
            let n = self.from.read_until(0, &mut buf).unwrap();
            assert!(n > 0, "chromium closed the DevTools pipe during {method}");
            buf.pop();
            let reply: Value = serde_json::from_slice(&buf).unwrap();
            if reply["id"] == json!(id) {
                if let Some(err) = reply.get("error") {
                    panic!("{method}: {err}");
                }
                return reply["result"].clone();
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    /// A command to the page.
    pub fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.page(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("{expr}: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is truthy in the page and returns its value.
    pub fn wait_for(&mut self, expr: &str, what: &str) -> Value {
        self.wait_up_to(expr, PATIENCE)
            .unwrap_or_else(|| panic!("waited in vain for {what} ({expr})"))
    }

    /// `expr`'s value once it is truthy, or None after `patience`.
    pub fn wait_up_to(&mut self, expr: &str, patience: Duration) -> Option<Value> {
        let start = Instant::now();
        loop {
            let v = self.eval(&format!(
                "(function(){{ try {{ return ({expr}); }} catch (e) {{ return null; }} }})()"
            ));
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return Some(v);
            }
            if start.elapsed() >= patience {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens `url` and waits for its script to have run.
    pub fn open(&mut self, url: &str) {
        self.eval("window.__leaving = true");
        self.page("Page.navigate", json!({"url": url}));
        self.wait_for(
            "!window.__leaving && document.readyState === 'complete' && document.documentElement.getAttribute('data-app') === 'ready'",
            &format!("{url} to load"),
        );
    }

    /// The centre of the first element `selector` matches, scrolled into view.
    pub fn centre(&mut self, selector: &str) -> (f64, f64) {
        let v = self.eval(&format!(
            "(function(){{ var el = document.querySelector({sel}); if (!el) return null; el.scrollIntoView({{block: 'center'}}); var r = el.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()",
            sel = json!(selector)
        ));
        let p = v
            .as_array()
            .unwrap_or_else(|| panic!("no element {selector}"));
        (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())
    }

    /// The page-relative box of an element: left, top, width, height (CSS pixels).
    pub fn rect(&mut self, selector: &str) -> [f64; 4] {
        let v = self.eval(&format!(
            "(function(){{ var el = document.querySelector({sel}); if (!el) return null; var r = el.getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.width, r.height]; }})()",
            sel = json!(selector)
        ));
        let a = v
            .as_array()
            .unwrap_or_else(|| panic!("no element {selector}"));
        [0, 1, 2, 3].map(|i| a[i].as_f64().unwrap())
    }

    fn mouse(&mut self, kind: &str, (x, y): (f64, f64), modifiers: u32, extra: Value) {
        let mut params = json!({"type": kind, "x": x, "y": y, "modifiers": modifiers});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        self.page("Input.dispatchMouseEvent", params);
    }

    pub fn hover(&mut self, at: (f64, f64)) {
        self.mouse("mouseMoved", at, 0, json!({}));
    }

    pub fn click(&mut self, at: (f64, f64)) {
        self.hover(at);
        for kind in ["mousePressed", "mouseReleased"] {
            self.mouse(kind, at, 0, json!({"button": "left", "clickCount": 1}));
        }
    }

    pub fn double_click(&mut self, at: (f64, f64)) {
        self.click(at);
        for kind in ["mousePressed", "mouseReleased"] {
            self.mouse(kind, at, 0, json!({"button": "left", "clickCount": 2}));
        }
    }

    /// Presses at `from`, moves to `to` in steps, releases; with shift held to pan.
    pub fn drag(&mut self, from: (f64, f64), to: (f64, f64), shift: bool) {
        let modifiers = if shift { 8 } else { 0 };
        self.hover(from);
        self.mouse(
            "mousePressed",
            from,
            modifiers,
            json!({"button": "left", "clickCount": 1}),
        );
        for i in 1..=8 {
            let f = i as f64 / 8.0;
            let at = (from.0 + (to.0 - from.0) * f, from.1 + (to.1 - from.1) * f);
            self.mouse(
                "mouseMoved",
                at,
                modifiers,
                json!({"button": "left", "buttons": 1}),
            );
        }
        self.mouse(
            "mouseReleased",
            to,
            modifiers,
            json!({"button": "left", "clickCount": 1}),
        );
    }

    pub fn wheel(&mut self, at: (f64, f64), delta_y: f64) {
        self.mouse("mouseWheel", at, 0, json!({"deltaX": 0, "deltaY": delta_y}));
    }

    /// A PNG of the element `selector` (of the window when `None`), as shown.
    pub fn screenshot(&mut self, selector: Option<&str>) -> Vec<u8> {
        let mut params = json!({"format": "png"});
        if let Some(sel) = selector {
            let [x, y, w, h] = self.rect(sel);
            params["clip"] = json!({"x": x, "y": y, "width": w, "height": h, "scale": 1});
            params["captureBeyondViewport"] = json!(true);
        }
        let shot = self.page("Page.captureScreenshot", params);
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }

    /// With `KALE_UPDATE_SCREENSHOT=1`, a screenshot of `selector` becomes `docs/NAME`
    /// (the README's tour shows them); the PNG is checked either way.
    pub fn keep_screenshot(&mut self, selector: Option<&str>, name: &str) {
        let png = self.screenshot(selector);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}: not a PNG");
        if std::env::var("KALE_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(name), &png).unwrap();
        }
    }
}
