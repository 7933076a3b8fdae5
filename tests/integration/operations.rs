//! The operations through the real `ctl` against a real daemon, and the exit codes they give.

use crate::{config, ctl_in_background, gated_config, sandbox_with_daemon, wait_at_gate};
use tests::{make_gate, open_gate, read_lines, wait_for, WAIT};

#[test]
fn status_human_and_json() {
    let (sb, daemon) = sandbox_with_daemon("st", 20, &[]);

    let run = sb.ctl(&["status", "st"]).expect_code(0);
    assert!(
        run.stdout.starts_with(&format!(
            "st {} (pid {})",
            env!("CARGO_PKG_VERSION"),
            daemon.pid()
        )),
        "{run}"
    );
    assert!(run.stdout.contains("generation 1"), "{run}");
    assert!(run.stdout.contains("serving"), "{run}");
    assert!(run.stdout.contains("st.log"), "{run}");
    assert!(run.stderr.is_empty(), "{run}");

    let run = sb.ctl(&["--json", "status", "st"]).expect_code(0);
    let doc = run.json();
    assert_eq!(doc["ok"], true, "{run}");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["operation"], "status");
    assert_eq!(doc["result"]["pid"], daemon.pid());
    assert_eq!(doc["result"]["name"], "st");
    assert_eq!(doc["result"]["config_generation"], 1);
    assert_eq!(doc["result"]["draining"], false);
    assert_eq!(doc["result"]["fields"]["message"], "alpha");
    assert_eq!(doc["daemon"]["protocol"], 1);
    assert_eq!(
        doc["result"]["log_files"][0],
        sb.path("st.log").display().to_string()
    );

    // A socket path works as a target too, and --quiet prints nothing on success.
    let socket = daemon.socket.display().to_string();
    let run = sb.ctl(&["--quiet", "status", &socket]).expect_code(0);
    assert_eq!(run.stdout, "", "{run}");
}

#[test]
fn reload_applies_a_valid_config() {
    let (sb, daemon) = sandbox_with_daemon("rl", 5, &[]);
    let log = sb.path("rl.log");
    std::fs::write(sb.path("rl.toml"), config(&log, 5, "beta")).unwrap();

    let run = sb.ctl(&["reload", "rl"]).expect_code(0);
    assert!(run.stdout.contains("generation 2"), "{run}");
    assert!(run.stdout.contains(r#"message "alpha" -> "beta""#), "{run}");

    // The new setting is live: lines carry it from now on.
    wait_for("a line with the new message", WAIT, || {
        read_lines(&log)
            .iter()
            .any(|l| l.message == "beta")
            .then_some(())
    });
    let doc = sb.ctl(&["--json", "status", "rl"]).expect_code(0).json();
    assert_eq!(doc["result"]["config_generation"], 2);
    assert_eq!(doc["result"]["last_reload"]["ok"], true);
    daemon.assert_alive();
}

#[test]
fn broken_config_is_refused_and_the_old_one_stays_active() {
    let (sb, daemon) = sandbox_with_daemon("bad", 5, &[]);
    let log = sb.path("bad.log");
    // Line 3 is broken; line 2 would change the message if it were applied.
    std::fs::write(
        sb.path("bad.toml"),
        format!(
            "log_file = {:?}\nmessage = \"never\"\ninterval_ms = = 7\n",
            log.display().to_string()
        ),
    )
    .unwrap();

    let run = sb.ctl(&["reload", "bad"]).expect_code(1);
    assert!(
        run.stderr.contains("line 3"),
        "the parser's line is reported: {run}"
    );
    assert!(run.stderr.contains("bad.toml"), "the file is named: {run}");
    assert!(run.stderr.contains("stays active"), "{run}");

    // Lines keep coming, all with the old settings.
    let before = read_lines(&log).len();
    let lines = wait_for("three more lines after the failed reload", WAIT, || {
        let lines = read_lines(&log);
        (lines.len() >= before + 3).then_some(lines)
    });
    assert!(
        lines
            .iter()
            .all(|l| l.message == "alpha" && l.interval_ms == 5),
        "{lines:?}"
    );

    let doc = sb.ctl(&["--json", "status", "bad"]).expect_code(0).json();
    assert_eq!(doc["result"]["config_generation"], 1);
    assert_eq!(doc["result"]["last_reload"]["ok"], false);
    assert!(doc["result"]["last_reload"]["message"]
        .as_str()
        .unwrap()
        .contains("line 3"));

    // --json carries the typed error and the same exit code.
    let run = sb.ctl(&["--json", "reload", "bad"]).expect_code(1);
    let doc = run.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["error"]["kind"], "failed");
    assert_eq!(doc["error"]["detail"]["kind"], "failed");
    daemon.assert_alive();
}

#[test]
fn rotate_after_rename_moves_lines_to_the_new_file() {
    let (sb, daemon) = sandbox_with_daemon("rot", 2, &[]);
    let log = sb.path("rot.log");
    let rotated = sb.path("rot.log.1");
    wait_for("first lines", WAIT, || {
        (read_lines(&log).len() >= 3).then_some(())
    });

    std::fs::rename(&log, &rotated).unwrap();
    let run = sb.ctl(&["--json", "rotate", "rot"]).expect_code(0);
    let file = &run.json()["result"]["files"][0];
    assert_eq!(file["path"], log.display().to_string(), "{run}");
    assert_ne!(file["old"]["ino"], file["new"]["ino"], "{run}");
    assert!(file["bytes_to_old"].as_u64().unwrap() > 0, "{run}");

    // The old file is closed for writing: its content no longer changes while new lines
    // arrive in the new file.
    let closed = std::fs::read_to_string(&rotated).unwrap();
    wait_for("lines in the new file", WAIT, || {
        (read_lines(&log).len() >= 3).then_some(())
    });
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), closed);

    // Together the files hold one unbroken run of sequence numbers.
    let mut seqs: Vec<u64> = read_lines(&rotated).iter().map(|l| l.seq).collect();
    seqs.extend(read_lines(&log).iter().map(|l| l.seq));
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or duplicate: {seqs:?}"
    );
    assert_eq!(seqs[0], 1);

    let run = sb.ctl(&["rotate", "rot"]).expect_code(0);
    assert!(run.stdout.contains("reopened 1 log file"), "{run}");
    daemon.assert_alive();
}

#[test]
fn disabled_operation_answers_unsupported_and_the_daemon_lives() {
    let (sb, daemon) = sandbox_with_daemon("old", 20, &["--disable", "rotate"]);

    let run = sb.ctl(&["rotate", "old"]).expect_code(3);
    assert!(run.stderr.contains("does not support `rotate`"), "{run}");
    assert!(
        run.stderr.contains("hello, status, reload, drain"),
        "lists what is supported: {run}"
    );
    let run = sb.ctl(&["--missing-ok", "rotate", "old"]).expect_code(3);
    assert!(
        run.stderr.contains("rotate"),
        "--missing-ok does not hide a live daemon's answer: {run}"
    );

    let doc = sb.ctl(&["--json", "rotate", "old"]).expect_code(3).json();
    assert_eq!(doc["error"]["kind"], "unsupported");

    sb.ctl(&["status", "old"]).expect_code(0);
    sb.ctl(&["reload", "old"]).expect_code(0);
    daemon.assert_alive();
}

#[test]
fn drain_stops_the_work_and_status_shows_it() {
    let (sb, daemon) = sandbox_with_daemon("dr", 2, &[]);
    let log = sb.path("dr.log");
    wait_for("first lines", WAIT, || {
        (!read_lines(&log).is_empty()).then_some(())
    });

    let run = sb.ctl(&["drain", "dr"]).expect_code(0);
    assert!(run.stdout.contains("drained"), "{run}");
    let after = read_lines(&log).len();
    let doc = sb.ctl(&["--json", "status", "dr"]).expect_code(0).json();
    assert_eq!(doc["result"]["draining"], true);
    assert_eq!(doc["result"]["in_flight"], 0);
    // The worker's next attempt at a unit of work is refused and it stops: after that no
    // line can come, and none came after the drain completed.
    wait_for("the worker to stop", WAIT, || {
        daemon
            .log()
            .contains("draining: no longer writing lines")
            .then_some(())
    });
    assert_eq!(
        read_lines(&log).len(),
        after,
        "lines written after drain completed"
    );
    let doc = sb.ctl(&["--json", "status", "dr"]).expect_code(0).json();
    assert_eq!(doc["result"]["fields"]["lines_written"], after.to_string());
    daemon.assert_alive();
}

#[test]
fn a_slow_reload_past_the_deadline_exits_75_and_is_not_applied_later() {
    let (sb, daemon) = sandbox_with_daemon("slow", 5, &[]);
    let log = sb.path("slow.log");
    let gate = sb.path("slow.gate");
    make_gate(&gate);
    std::fs::write(sb.path("slow.toml"), gated_config(&log, "late", &gate)).unwrap();

    // The reload is held at the gate until after its caller gave up.
    let reload = ctl_in_background(&sb, &["--timeout", "2s", "reload", "slow"]);
    wait_at_gate(&daemon, 1);
    let run = reload.join().unwrap().expect_code(75);
    assert!(run.stderr.contains("within 2s"), "{run}");
    assert!(
        run.stderr.contains("ctl status"),
        "says where to look: {run}"
    );
    wait_for("the daemon to see the caller's deadline pass", WAIT, || {
        daemon
            .log()
            .contains("reload: the caller's deadline passed at the gate")
            .then_some(())
    });
    // The reload runs on: nothing is recorded yet.
    let doc = sb.ctl(&["--json", "status", "slow"]).expect_code(0).json();
    assert!(doc["result"]["last_reload"].is_null(), "{doc}");

    // Let through past the caller's deadline, it does not apply the new configuration, and
    // status says so.
    open_gate(&gate);
    let doc = wait_for("the abandoned reload to finish", WAIT, || {
        let doc = sb.ctl(&["--json", "status", "slow"]).expect_code(0).json();
        (!doc["result"]["last_reload"].is_null()).then_some(doc)
    });
    let last = &doc["result"]["last_reload"];
    assert_eq!(last["ok"], false, "{doc}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("deadline passed"),
        "{doc}"
    );
    assert_eq!(doc["result"]["config_generation"], 1);
    assert_eq!(doc["result"]["fields"]["message"], "alpha");
    let lines = read_lines(&log);
    assert!(
        lines.iter().all(|l| l.message == "alpha"),
        "the late config leaked into the log"
    );
    daemon.assert_alive();
}

#[test]
fn each_call_costs_the_log_one_short_line_and_a_refused_reload_is_a_warning() {
    let (sb, daemon) = sandbox_with_daemon("lines", 20, &[]);
    let log = sb.path("lines.log");
    let reload_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(": reload "))
            .map(str::to_owned)
            .collect()
    };
    let in_file = || std::fs::read_to_string(&log).unwrap_or_default();

    sb.ctl(&["reload", "lines"]).expect_code(0);
    let lines = wait_for("the reload's line in the log file", WAIT, || {
        let lines = reload_lines(&in_file());
        (!lines.is_empty()).then_some(lines)
    });
    assert_eq!(lines.len(), 1, "one line per call: {lines:?}");
    assert!(lines[0].contains(" INFO "), "{}", lines[0]);
    assert!(
        lines[0].len() < 200,
        "{} bytes: {}",
        lines[0].len(),
        lines[0]
    );
    // Read-only calls are not news: nothing at the default level.
    sb.ctl(&["status", "lines"]).expect_code(0);

    std::fs::write(sb.path("lines.toml"), "interval_ms = \"soon\"\n").unwrap();
    sb.ctl(&["reload", "lines"]).expect_code(1);
    let lines = wait_for("the refused reload's line", WAIT, || {
        let lines = reload_lines(&in_file());
        (lines.len() >= 2).then_some(lines)
    });
    assert!(lines[1].contains(" WARN "), "{}", lines[1]);
    let text = in_file();
    assert!(!text.contains("status ok"), "{text}");
    // The daemon's own lines in its file carry no terminal colour codes.
    assert!(!text.contains('\u{1b}'), "{text}");
    daemon.assert_alive();
}

#[test]
fn ping_times_a_round_trip_counts_it_and_describe_lists_it_as_a_builtin() {
    let (sb, _daemon) = sandbox_with_daemon("pg", 20, &[]);

    let run = sb.ctl(&["ping", "pg"]).expect_code(0);
    assert!(run.stdout.starts_with("pg: answered in "), "{run}");
    assert!(run.stdout.trim_end().ends_with(" ms"), "{run}");

    let run = sb.ctl(&["--json", "ping", "pg"]).expect_code(0);
    let doc = run.json();
    assert_eq!(doc["operation"], "ping", "{run}");
    assert!(doc["result"]["round_trip_us"].is_u64(), "{run}");

    // Dispatched by the registry like any other: counted, and described.
    let run = sb
        .ctl(&["--json", "counters", "pg", "ctl.calls.ping"])
        .expect_code(0);
    let counters = run.json();
    let ok = counters["result"]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ctl.calls.ping.ok")
        .unwrap_or_else(|| panic!("no ctl.calls.ping.ok: {run}"))
        .clone();
    assert_eq!(ok["value"], 2, "{run}");
    let run = sb.ctl(&["--json", "describe", "pg"]).expect_code(0);
    let ping = run.json()["result"]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["name"] == "ping")
        .cloned()
        .unwrap_or_else(|| panic!("no ping in describe: {run}"));
    assert_eq!(ping["kind"], "builtin");
    assert_eq!(ping["access"], "read");
    // It is not one of the daemon's commands.
    sb.ctl(&["call", "pg", "ping"]).expect_code(3);
}
