//! Operations done right: overlapping reloads, drain with work in flight, systemd's view.
//!
//! Where an outcome depends on when something finishes, the test decides it: reloads and
//! start-up jobs wait at a gate (a FIFO) until the test opens it, so nothing here depends on
//! how fast the machine is.

use crate::{config, ctl_in_background, gated_config, sandbox_with_daemon, wait_at_gate, HELD};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use tests::{make_gate, open_gate, read_lines, wait_for, Daemon, Sandbox, WAIT};

/// Has the server log a line each time a reload request queues for the next reload to start
/// (`reload requested: N waiting ...`).
fn log_queued_reloads(sb: &Sandbox, name: &str) {
    sb.ctl(&["log-level", name, "info,control_server::ops::reload=debug"])
        .expect_code(0);
}

/// Waits until the server says that `n` requests wait for the next reload to start.
fn wait_queued(daemon: &Daemon, n: usize) {
    let line = format!("reload requested: {n} waiting for the next reload");
    wait_for(&format!("{n} reload requests to queue"), WAIT, || {
        daemon.log().contains(&line).then_some(())
    });
}

/// `ctl --json status NAME`'s result.
fn status(sb: &Sandbox, name: &str) -> serde_json::Value {
    sb.ctl(&["--json", "status", name]).expect_code(0).json()["result"].clone()
}

#[test]
fn twenty_concurrent_reloads_cost_two_runs_and_agree_on_generations() {
    let (sb, daemon) = sandbox_with_daemon("many", 20, &[]);
    let log = sb.path("many.log");
    let gate = sb.path("many.gate");
    make_gate(&gate);
    std::fs::write(sb.path("many.toml"), gated_config(&log, "beta", &gate)).unwrap();

    // The first caller's reload has read the config and is held before applying it...
    let first = ctl_in_background(&sb, &["--json", "--timeout", HELD, "reload", "many"]);
    wait_at_gate(&daemon, 1);
    // ...while the nineteen others all ask.
    log_queued_reloads(&sb, "many");
    let others: Vec<_> = (0..19)
        .map(|_| ctl_in_background(&sb, &["--json", "--timeout", HELD, "reload", "many"]))
        .collect();
    wait_queued(&daemon, 19);
    open_gate(&gate);
    // The nineteen share the one reload that starts next, which reads the config as it is
    // after all of them asked. It waits at the gate too.
    wait_at_gate(&daemon, 2);
    open_gate(&gate);

    let first = first.join().unwrap().expect_code(0).json()["result"].clone();
    assert_eq!(first["generation"], 2, "{first}");
    assert_eq!(first["joined"], false, "{first}");
    assert!(
        first["summary"].as_str().unwrap().contains("beta"),
        "{first}"
    );
    let others: Vec<serde_json::Value> = others
        .into_iter()
        .map(|c| c.join().unwrap().expect_code(0).json()["result"].clone())
        .collect();
    // Nothing changed in between: the second reload found the same config, so every reply
    // names the generation status reports, with the new message.
    for r in &others {
        assert_eq!(r["generation"], 2, "{others:?}");
        assert_eq!(r["unchanged"], true, "{others:?}");
    }
    let started = others.iter().filter(|r| r["joined"] == false).count();
    assert_eq!(
        started, 1,
        "one request starts the reload, 18 join it: {others:?}"
    );
    let status = status(&sb, "many");
    assert_eq!(status["config_generation"], 2, "{status}");
    assert_eq!(status["values"]["message"], "beta", "{status}");
    assert_eq!(
        status["values"]["reload_runs"], 2,
        "twenty callers, two reloads: {status}"
    );
    daemon.assert_alive();
}

#[test]
fn a_change_made_during_a_running_reload_is_picked_up_by_the_next_generation() {
    let (sb, daemon) = sandbox_with_daemon("race", 20, &[]);
    let log = sb.path("race.log");
    let gate = sb.path("race.gate");
    make_gate(&gate);
    std::fs::write(sb.path("race.toml"), gated_config(&log, "beta", &gate)).unwrap();
    let first = ctl_in_background(&sb, &["--json", "--timeout", HELD, "reload", "race"]);
    // The first reload has read the file and is held before applying it: edit it now, and
    // ask again.
    wait_at_gate(&daemon, 1);
    std::fs::write(sb.path("race.toml"), config(&log, 20, "gamma")).unwrap();
    log_queued_reloads(&sb, "race");
    let second = ctl_in_background(&sb, &["--json", "--timeout", HELD, "reload", "race"]);
    wait_queued(&daemon, 1);
    // The two overlap: the second request is in while the first is still unanswered.
    assert!(
        !first.is_finished(),
        "the first reload answered while held at the gate"
    );
    open_gate(&gate);

    let first = first.join().unwrap().expect_code(0).json();
    let second = second.join().unwrap().expect_code(0).json();
    assert_eq!(first["result"]["generation"], 2, "{first}");
    assert!(
        first["result"]["summary"]
            .as_str()
            .unwrap()
            .contains("beta"),
        "{first}"
    );
    // Not the reload that was running when it asked, which had read the file before the edit:
    // a reload of its own, started after.
    assert_eq!(second["result"]["generation"], 3, "{second}");
    assert_eq!(second["result"]["joined"], false, "{second}");
    assert!(
        second["result"]["summary"]
            .as_str()
            .unwrap()
            .contains("gamma"),
        "{second}"
    );
    let status = status(&sb, "race");
    assert_eq!(status["config_generation"], 3, "{status}");
    assert_eq!(status["values"]["message"], "gamma", "{status}");
    assert_eq!(status["values"]["reload_runs"], 2, "{status}");
}

/// A config with `jobs` start-up jobs that end when `gate` is opened, or never without one.
fn jobs_config(log: &Path, jobs: u32, gate: Option<&Path>) -> String {
    let mut toml = format!("{}startup_jobs = {jobs}\n", config(log, 5, "alpha"));
    if let Some(gate) = gate {
        toml += &format!("job_gate = {:?}\n", gate.display().to_string());
    }
    toml
}

/// Waits until a drain has begun, and returns the status then.
fn wait_draining(sb: &Sandbox, name: &str) -> serde_json::Value {
    wait_for("the drain to begin", WAIT, || {
        let status = status(sb, name);
        (status["draining"] == true).then_some(status)
    })
}

/// The daemon's log once it holds `line`, failing after `WAIT`.
fn log_with(daemon: &Daemon, line: &str) -> String {
    wait_for(&format!("{line:?} in the daemon's log"), WAIT, || {
        let log = daemon.log();
        log.contains(line).then_some(log)
    })
}

#[test]
fn drain_waits_for_work_in_flight_and_refuses_new_work() {
    let sb = Sandbox::new();
    let log = sb.path("dj.log");
    let gate = sb.path("dj.gate");
    make_gate(&gate);
    let cfg = sb.write_config("dj.toml", &jobs_config(&log, 3, Some(&gate)));
    let daemon = sb.start_daemon("dj", &cfg, &[]);
    // The jobs begin before the socket is bound: the first caller sees them.
    assert_eq!(status(&sb, "dj")["in_flight"], 3);

    let drain = ctl_in_background(&sb, &["--timeout", HELD, "drain", "dj"]);
    // It waits for the jobs, which are held at their gate until the test opens it.
    let during = wait_draining(&sb, "dj");
    assert_eq!(during["in_flight"], 3, "{during}");
    open_gate(&gate);
    let run = drain.join().unwrap().expect_code(0);
    assert!(
        run.stdout.contains("drained; nothing left in flight"),
        "{run}"
    );
    // Progress was shown while waiting (plain lines: stderr is not a terminal here).
    assert!(run.stderr.contains("ctl: draining dj: "), "{run}");
    assert!(run.stderr.contains(" in flight"), "{run}");
    // It completed only after the three jobs had finished.
    let log_text = log_with(&daemon, "drained: nothing in flight");
    let drained_at = log_text.find("drained: nothing in flight").unwrap();
    assert_eq!(
        log_text[..drained_at].matches("job finished").count(),
        3,
        "{log_text}"
    );

    // New work is refused: the worker stopped, and no line appears any more.
    log_with(&daemon, "draining: no longer writing lines");
    let lines = read_lines(&log).len();
    let doc = status(&sb, "dj");
    assert_eq!(doc["draining"], true);
    assert_eq!(doc["in_flight"], 0);
    assert_eq!(
        read_lines(&log).len(),
        lines,
        "a line was written after the drain"
    );
    daemon.assert_alive();
}

#[test]
fn drain_past_its_deadline_fails_and_reports_what_is_left() {
    let sb = Sandbox::new();
    let log = sb.path("dl.log");
    // Jobs with no gate never end.
    let cfg = sb.write_config("dl.toml", &jobs_config(&log, 3, None));
    let daemon = sb.start_daemon("dl", &cfg, &[]);

    let run = sb.ctl(&["--timeout", "3s", "drain", "dl"]).expect_code(1);
    assert!(
        run.stderr.contains("3 units of work still in flight"),
        "{run}"
    );
    let doc = sb
        .ctl(&["--timeout", "3s", "--json", "drain", "dl"])
        .expect_code(1)
        .json();
    assert_eq!(doc["result"]["completed"], false);
    assert_eq!(doc["result"]["in_flight"], 3);
    assert_eq!(status(&sb, "dl")["draining"], true);
    daemon.assert_alive();
}

#[test]
fn a_daemon_can_exit_once_drained() {
    let sb = Sandbox::new();
    let log = sb.path("dx.log");
    let gate = sb.path("dx.gate");
    make_gate(&gate);
    let cfg = sb.write_config("dx.toml", &jobs_config(&log, 2, Some(&gate)));
    let args: Vec<String> = [
        "--name",
        "dx",
        "--config",
        cfg.to_str().unwrap(),
        "--exit-after-drain",
    ]
    .map(String::from)
    .to_vec();
    let mut daemon = sb.spawn_daemon("dx", &args, &[]);
    daemon.wait_ready();
    let drain = ctl_in_background(&sb, &["--timeout", HELD, "drain", "dx"]);
    wait_draining(&sb, "dx");
    open_gate(&gate);
    drain.join().unwrap().expect_code(0);
    let status = daemon.wait_exit();
    assert!(status.success(), "{status:?}: {}", daemon.log());
    // It exited once drained, not once draining: after the jobs.
    let log_text = daemon.log();
    let exiting_at = log_text.find("drained: exiting").expect(&log_text);
    assert_eq!(
        log_text[..exiting_at].matches("job finished").count(),
        2,
        "{log_text}"
    );
    sb.ctl(&["status", "dx"]).expect_code(69);
}

/// Receives the next datagram, failing after `WAIT`.
fn next_message(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the wait");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn systemd_is_told_about_readiness_reloads_draining_resuming_and_stopping() {
    let sb = Sandbox::new();
    let notify = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let log = sb.path("sd.log");
    let cfg = sb.write_config("sd.toml", &config(&log, 20, "alpha"));
    let args: Vec<String> = ["--name", "sd", "--config", cfg.to_str().unwrap()]
        .map(String::from)
        .to_vec();
    let mut daemon = sb.spawn_daemon("sd", &args, &[("NOTIFY_SOCKET", &notify)]);
    daemon.wait_ready();
    assert_eq!(next_message(&socket), "READY=1");

    let reloading = |msg: String| {
        let usec = msg
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("{msg:?}"));
        assert!(usec.parse::<u64>().is_ok(), "{msg:?}");
    };

    std::fs::write(&cfg, config(&log, 20, "beta")).unwrap();
    sb.ctl(&["reload", "sd"]).expect_code(0);
    reloading(next_message(&socket));
    assert_eq!(
        next_message(&socket),
        "READY=1\nSTATUS=reload ok: generation 2 active (message \"alpha\" -> \"beta\")"
    );

    std::fs::write(&cfg, "log_file = \"x\"\ninterval_ms = = 1\n").unwrap();
    sb.ctl(&["reload", "sd"]).expect_code(1);
    reloading(next_message(&socket));
    let failed = next_message(&socket);
    assert!(
        failed.starts_with(
            "READY=1\nSTATUS=reload failed, old configuration kept: new configuration refused"
        ),
        "{failed:?}"
    );
    assert!(failed.contains("line 2, column 15"), "{failed:?}");

    // A drain is said in the status line only: `STOPPING=1` would make systemd stop the unit
    // (and SIGKILL it after TimeoutStopSec), which `resume` could not undo.
    sb.ctl(&["drain", "sd"]).expect_code(0);
    let draining = next_message(&socket);
    assert!(draining.starts_with("STATUS=draining: "), "{draining:?}");
    let drained = next_message(&socket);
    assert!(drained.starts_with("STATUS=drained: "), "{drained:?}");
    sb.ctl(&["resume", "sd"]).expect_code(0);
    assert_eq!(
        next_message(&socket),
        "STATUS=serving again: resume undid the drain"
    );
    // A real stop is the one time systemd hears STOPPING=1.
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(next_message(&socket), "STOPPING=1");
    let status = daemon.wait_exit();
    assert!(status.success(), "{status:?}: {}", daemon.log());
}

#[test]
fn shutdown_finishes_the_call_in_progress_and_delivers_its_reply() {
    // A grace far longer than the test may take: the default 10 s would make the outcome
    // depend on how fast a loaded machine gets from the TERM to opening the gate.
    let (sb, mut daemon) = sandbox_with_daemon("bye", 20, &["--shutdown-grace", "10min"]);
    let log = sb.path("bye.log");
    let gate = sb.path("bye.gate");
    make_gate(&gate);
    std::fs::write(sb.path("bye.toml"), gated_config(&log, "last", &gate)).unwrap();
    let reload = ctl_in_background(&sb, &["--json", "--timeout", HELD, "reload", "bye"]);
    wait_at_gate(&daemon, 1);
    daemon.signal(rustix::process::Signal::TERM);
    // New callers are turned away at once (the socket is gone)...
    wait_for("the socket to be removed", WAIT, || {
        (!daemon.socket.exists()).then_some(())
    });
    sb.ctl(&["status", "bye"]).expect_code(69);
    // ...while the call in progress, held at the gate, keeps the stopping server waiting (up to
    // its grace) until it completes, and its caller gets the answer. The gate opens
    // only once the server waits, not while a call it would abandon can still slip through.
    log_with(&daemon, "control server stopping");
    daemon.assert_alive();
    open_gate(&gate);
    let reply = reload.join().unwrap().expect_code(0).json();
    assert_eq!(reply["result"]["generation"], 2, "{reply}");
    let status = daemon.wait_exit();
    let log = daemon.log();
    assert!(status.success(), "{status:?}: {log}");
    assert!(
        !log.contains("stopped with calls still running"),
        "the server gave up on the call: {log}"
    );
}

/// [`config`] with `message` and the test hook `hook = "gate"` (`apply_gate`, `load_gate`).
fn config_with_gate(log: &Path, message: &str, hook: &str, gate: &Path) -> String {
    format!(
        "{}{hook} = {:?}\n",
        config(log, 20, message),
        gate.display().to_string()
    )
}

/// `ctl status` while a step of the daemon's blocks its thread: must answer. The demo runs a
/// `current_thread` runtime, so a step run on the runtime would stop everything, `status`
/// included, until the gate opens. The generous `--timeout` only catches "never". The gate is
/// opened whatever happened, so that a failure does not leave the daemon blocked.
fn status_while_blocked(sb: &Sandbox, name: &str, gate: &Path) -> serde_json::Value {
    let run = sb.ctl(&["--json", "--timeout", "45s", "status", name]);
    let answered = run.code == Some(0);
    open_gate(gate);
    assert!(
        answered,
        "status did not answer while the daemon's step blocked at the gate: {run}"
    );
    run.json()["result"].clone()
}

#[test]
fn status_answers_while_a_reloads_apply_step_blocks() {
    let (sb, daemon) = sandbox_with_daemon("slowapply", 20, &[]);
    let log = sb.path("slowapply.log");
    let gate = sb.path("slowapply.gate");
    make_gate(&gate);
    std::fs::write(
        sb.path("slowapply.toml"),
        config_with_gate(&log, "beta", "apply_gate", &gate),
    )
    .unwrap();
    let reload = ctl_in_background(&sb, &["--json", "--timeout", HELD, "reload", "slowapply"]);
    log_with(&daemon, "reload: applying, blocked at the gate");

    let during = status_while_blocked(&sb, "slowapply", &gate);
    // Not applied yet: the swap comes after `apply`.
    assert_eq!(during["config_generation"], 1, "{during}");
    assert_eq!(during["values"]["message"], "alpha", "{during}");

    let reload = reload.join().unwrap().expect_code(0).json();
    assert_eq!(reload["result"]["generation"], 2, "{reload}");
    let after = status(&sb, "slowapply");
    assert_eq!(after["config_generation"], 2, "{after}");
    assert_eq!(after["values"]["message"], "beta", "{after}");
    daemon.assert_alive();
}

#[test]
fn status_answers_while_a_checks_load_step_blocks() {
    let (sb, daemon) = sandbox_with_daemon("slowload", 20, &[]);
    let log = sb.path("slowload.log");
    let gate = sb.path("slowload.gate");
    make_gate(&gate);
    std::fs::write(
        sb.path("slowload.toml"),
        config_with_gate(&log, "beta", "load_gate", &gate),
    )
    .unwrap();
    let check = ctl_in_background(&sb, &["--json", "--timeout", HELD, "check", "slowload"]);
    log_with(&daemon, "load: blocked at the gate");

    let during = status_while_blocked(&sb, "slowload", &gate);
    assert_eq!(during["config_generation"], 1, "{during}");

    let check = check.join().unwrap().expect_code(0).json();
    assert_eq!(check["result"]["unchanged"], false, "{check}");
    assert_eq!(status(&sb, "slowload")["config_generation"], 1);
    daemon.assert_alive();
}
