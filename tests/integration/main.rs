//! Integration tests: real `demo-daemon` processes, the real `ctl`, real Unix sockets.
//! One test binary (modules below) keeps link time low.

mod abuse;
mod ansible;
mod c_daemon;
mod check;
mod cli;
mod commands;
mod counters;
mod demo;
mod died;
mod doctor;
mod embedded;
mod fleet;
mod history;
mod hostile;
mod hostile_daemon;
mod hostile_files;
mod lifecycle;
mod log_lines;
mod logrotate;
mod operations;
mod operator;
mod protocol_doc;
mod python_client;
mod resume;
mod signal;
mod socket_convention;
mod socket_file;
mod ssh;
mod stop;
mod systemd;
mod top;
mod wire;

use std::path::Path;
use std::process::Command;
use tests::{bins, run, wait_for, Daemon, Sandbox, WAIT};

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

/// `--timeout` for a call the test holds at a gate: the test decides when it ends, so its
/// deadline must not pass however slow the machine is meanwhile (a loaded machine can take
/// longer than ctl's default 30 s between starting the call and opening the gate). The harness
/// still kills a `ctl` after 60 s, which catches "never".
pub const HELD: &str = "10m";

/// Runs `ctl ARGS` in `sb`'s environment on another thread.
pub fn ctl_in_background(sb: &Sandbox, args: &[&str]) -> std::thread::JoinHandle<tests::Run> {
    let mut cmd = Command::new(&bins().ctl);
    cmd.args(args).env("CTL_SOCKET_DIR", sb.socket_dir());
    std::thread::spawn(move || run(&mut cmd))
}

/// [`config`] with `message`, whose reloads wait at the FIFO `gate` before applying.
pub fn gated_config(log: &Path, message: &str, gate: &Path) -> String {
    format!(
        "{}reload_gate = {:?}\n",
        config(log, 20, message),
        gate.display().to_string()
    )
}

/// Waits until reloads have waited at a gate `n` times in all.
pub fn wait_at_gate(daemon: &Daemon, n: usize) {
    wait_for(
        &format!("reload number {n} to wait at the gate"),
        WAIT,
        || {
            let waits = daemon.log().matches("reload: waiting at the gate").count();
            (waits >= n).then_some(())
        },
    );
}
