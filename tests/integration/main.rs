//! Integration tests: real `demo-daemon` processes, the real `ctl`, real Unix sockets.
//! One test binary (modules below) keeps link time low.

mod abuse;
mod cli;
mod demo;
mod embedded;
mod hostile;
mod hostile_daemon;
mod hostile_files;
mod lifecycle;
mod logrotate;
mod operations;
mod operator;
mod resume;
mod socket_convention;
mod socket_file;
mod wire;

use std::path::Path;
use tests::Sandbox;

/// A demo config writing to `log` every `interval_ms` with `message`.
pub fn config(log: &Path, interval_ms: u64, message: &str) -> String {
    format!(
        "log_file = {:?}\ninterval_ms = {interval_ms}\nmessage = {message:?}\n",
        log.display().to_string()
    )
}

/// Starts daemon `name` in `sb`, writing to `<sandbox>/<name>.log` every `interval_ms`.
pub fn start_demo(sb: &Sandbox, name: &str, interval_ms: u64, extra: &[&str]) -> tests::Daemon {
    let log = sb.path(&format!("{name}.log"));
    let cfg = sb.write_config(&format!("{name}.toml"), &config(&log, interval_ms, "alpha"));
    sb.start_daemon(name, &cfg, extra)
}

/// A sandbox with a running daemon `name` writing to `<sandbox>/<name>.log`.
pub fn sandbox_with_daemon(
    name: &str,
    interval_ms: u64,
    extra: &[&str],
) -> (Sandbox, tests::Daemon) {
    let sb = Sandbox::new();
    let daemon = start_demo(&sb, name, interval_ms, extra);
    (sb, daemon)
}
