//! `KALE_TRACE=FILE`: a timestamped line per event of a run, appended to FILE by kale,
//! the fork server and every step's runtime alike, so one file shows where a trial's
//! time goes between processes (`bench/trace_report.py` sums it per phase).
//!
//! A line is `<unix time in µs> <pid> <who> <event> [details]`. Off (one env lookup
//! for the whole process) when the variable is unset.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

pub const ENV: &str = "KALE_TRACE";

fn sink() -> Option<&'static Mutex<std::fs::File>> {
    static SINK: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    SINK.get_or_init(|| {
        let path = std::env::var_os(ENV).filter(|p| !p.is_empty())?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(Mutex::new)
    })
    .as_ref()
}

pub fn enabled() -> bool {
    sink().is_some()
}

/// Appends `event` (with `details`, built only when tracing is on).
pub fn event(event: &str, details: impl FnOnce() -> String) {
    let Some(sink) = sink() else { return };
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let line = format!(
        "{micros} {} kale {event} {}\n",
        std::process::id(),
        details()
    );
    // One write per line on an O_APPEND file: lines from several processes do not mix.
    if let Ok(mut file) = sink.lock() {
        let _ = file.write_all(line.as_bytes());
    }
}
