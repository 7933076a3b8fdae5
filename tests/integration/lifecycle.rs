//! Operations done right: overlapping reloads, drain with work in flight, systemd's view.

use crate::{config, sandbox_with_daemon};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use tests::{bins, read_lines, run, wait_for, Sandbox, WAIT};

/// Runs `ctl ARGS` in `sb`'s environment on another thread.
fn ctl_in_background(sb: &Sandbox, args: &[&str]) -> std::thread::JoinHandle<tests::Run> {
    let mut cmd = Command::new(&bins().ctl);
    cmd.args(args).env("CTL_SOCKET_DIR", sb.socket_dir());
    std::thread::spawn(move || run(&mut cmd))
}

fn slow_config(log: &Path, message: &str, delay_ms: u64) -> String {
    format!("{}reload_delay_ms = {delay_ms}\n", config(log, 20, message))
}

#[test]
fn twenty_concurrent_reloads_share_a_few_runs_and_agree_on_generations() {
    let (sb, daemon) = sandbox_with_daemon("many", 20, &[]);
    let log = sb.path("many.log");
    // Slow enough that all twenty callers arrive while the first reload runs.
    std::fs::write(sb.path("many.toml"), slow_config(&log, "beta", 1500)).unwrap();

    let callers: Vec<_> = (0..20)
        .map(|_| ctl_in_background(&sb, &["--json", "reload", "many"]))
        .collect();
    let replies: Vec<serde_json::Value> = callers
        .into_iter()
        .map(|c| c.join().unwrap().expect_code(0).json()["result"].clone())
        .collect();

    // One configuration was applied, so every reply names the same generation, and it is the
    // one status reports with the new message.
    for r in &replies {
        assert_eq!(r["generation"], 2, "{replies:?}");
    }
    assert!(
        replies.iter().any(|r| r["joined"] == true),
        "nobody shared a reload: {replies:?}"
    );
    let doc = sb.ctl(&["--json", "status", "many"]).expect_code(0).json();
    assert_eq!(doc["result"]["config_generation"], 2);
    assert_eq!(doc["result"]["fields"]["message"], "beta");
    let runs: u64 = doc["result"]["fields"]["reload_runs"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(runs <= 3, "the handler ran {runs} times for 20 callers");
    daemon.assert_alive();
}

#[test]
fn a_change_made_during_a_running_reload_is_picked_up_by_the_next_generation() {
    let (sb, daemon) = sandbox_with_daemon("race", 20, &[]);
    let log = sb.path("race.log");
    std::fs::write(sb.path("race.toml"), slow_config(&log, "beta", 800)).unwrap();
    let first = ctl_in_background(&sb, &["--json", "reload", "race"]);
    // The first reload has read the file and is about to apply it: edit it now.
    wait_for("the first reload to have read the config", WAIT, || {
        daemon
            .log()
            .contains("reload: applying in 800 ms")
            .then_some(())
    });
    std::fs::write(sb.path("race.toml"), config(&log, 20, "gamma")).unwrap();
    let second = sb.ctl(&["--json", "reload", "race"]).expect_code(0).json();
    let first = first.join().unwrap().expect_code(0).json();

    assert_eq!(first["result"]["generation"], 2, "{first}");
    assert_eq!(second["result"]["generation"], 3, "{second}");
    assert_eq!(second["result"]["joined"], false);
    assert!(
        second["result"]["summary"]
            .as_str()
            .unwrap()
            .contains("gamma"),
        "{second}"
    );
    let doc = sb.ctl(&["--json", "status", "race"]).expect_code(0).json();
    assert_eq!(doc["result"]["config_generation"], 3);
    assert_eq!(doc["result"]["fields"]["message"], "gamma");
}

fn jobs_config(log: &Path, jobs: u32, job_ms: u64) -> String {
    format!(
        "{}startup_jobs = {jobs}\njob_ms = {job_ms}\n",
        config(log, 5, "alpha")
    )
}

#[test]
fn drain_waits_for_work_in_flight_and_refuses_new_work() {
    let sb = Sandbox::new();
    let log = sb.path("dj.log");
    let cfg = sb.write_config("dj.toml", &jobs_config(&log, 3, 1500));
    let daemon = sb.start_daemon("dj", &cfg, &[]);
    let doc = sb.ctl(&["--json", "status", "dj"]).expect_code(0).json();
    assert!(doc["result"]["in_flight"].as_u64().unwrap() >= 3, "{doc}");

    let run = sb.ctl(&["--timeout", "10s", "drain", "dj"]).expect_code(0);
    assert!(
        run.stdout.contains("drained; nothing left in flight"),
        "{run}"
    );
    // Progress was shown while waiting (plain lines: stderr is not a terminal here).
    assert!(run.stderr.contains("ctl: draining dj: "), "{run}");
    assert!(run.stderr.contains(" in flight"), "{run}");
    // It returned only after the three jobs had finished.
    let log_text = daemon.log();
    assert_eq!(log_text.matches("job finished").count(), 3, "{log_text}");

    // New work is refused: the worker stopped, and no line appears any more.
    assert!(
        log_text.contains("draining: no longer writing lines"),
        "{log_text}"
    );
    let lines = read_lines(&log).len();
    let doc = sb.ctl(&["--json", "status", "dj"]).expect_code(0).json();
    assert_eq!(doc["result"]["draining"], true);
    assert_eq!(doc["result"]["in_flight"], 0);
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
    let cfg = sb.write_config("dl.toml", &jobs_config(&log, 3, 600_000));
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
    let doc = sb.ctl(&["--json", "status", "dl"]).expect_code(0).json();
    assert_eq!(doc["result"]["draining"], true);
    daemon.assert_alive();
}

#[test]
fn a_daemon_can_exit_once_drained() {
    let sb = Sandbox::new();
    let log = sb.path("dx.log");
    let cfg = sb.write_config("dx.toml", &jobs_config(&log, 2, 300));
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
    sb.ctl(&["--timeout", "10s", "drain", "dx"]).expect_code(0);
    let status = daemon.wait_exit();
    assert!(status.success(), "{status:?}: {}", daemon.log());
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
fn systemd_is_told_about_readiness_reloads_stopping_and_resuming() {
    let sb = Sandbox::new();
    let notify = sb.path("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let log = sb.path("sd.log");
    let cfg = sb.write_config("sd.toml", &config(&log, 20, "alpha"));
    let args: Vec<String> = ["--name", "sd", "--config", cfg.to_str().unwrap()]
        .map(String::from)
        .to_vec();
    let daemon = sb.spawn_daemon("sd", &args, &[("NOTIFY_SOCKET", &notify)]);
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

    sb.ctl(&["drain", "sd"]).expect_code(0);
    assert_eq!(next_message(&socket), "STOPPING=1");
    sb.ctl(&["resume", "sd"]).expect_code(0);
    assert_eq!(
        next_message(&socket),
        "READY=1\nSTATUS=serving again: resume undid the drain"
    );
}

#[test]
fn shutdown_finishes_the_call_in_progress_and_delivers_its_reply() {
    let (sb, mut daemon) = sandbox_with_daemon("bye", 20, &[]);
    let log = sb.path("bye.log");
    std::fs::write(sb.path("bye.toml"), slow_config(&log, "last", 1000)).unwrap();
    let reload = ctl_in_background(&sb, &["--json", "reload", "bye"]);
    wait_for("the reload to be under way", WAIT, || {
        daemon
            .log()
            .contains("reload: applying in 1000 ms")
            .then_some(())
    });
    daemon.signal(rustix::process::Signal::TERM);
    // New callers are turned away at once (the socket is gone)...
    wait_for("the socket to be removed", WAIT, || {
        (!daemon.socket.exists()).then_some(())
    });
    sb.ctl(&["status", "bye"]).expect_code(69);
    // ...while the call in progress completes and its caller gets the answer.
    let reply = reload.join().unwrap().expect_code(0).json();
    assert_eq!(reply["result"]["generation"], 2, "{reply}");
    let status = daemon.wait_exit();
    assert!(status.success(), "{status:?}: {}", daemon.log());
}
