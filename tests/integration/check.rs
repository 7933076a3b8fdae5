//! `ctl check`: the configuration validated as a reload would, nothing applied, and what a
//! reload would change said in the reload's own words.

use crate::{config, ctl_in_background, gated_config, sandbox_with_daemon, wait_at_gate, HELD};
use tests::{make_gate, open_gate, read_lines, wait_for, Daemon, Sandbox, WAIT};

/// `ctl --json status NAME`'s result.
fn status(sb: &Sandbox, name: &str) -> serde_json::Value {
    sb.ctl(&["--json", "status", name]).expect_code(0).json()["result"].clone()
}

/// The message of the first line the daemon formats after this call begins: what the daemon
/// does now. Lines are numbered (`seq`) when formatted, and `status` reports how many were
/// written (`lines_written`); the demo formats and hands over a line in one go on its only
/// runtime thread, so a line numbered past that count was formatted after `status` answered.
/// Counting the file's lines instead could count too few: a line formatted before a reload
/// applied can reach the file after the count (a buffered log file writes it out later).
fn next_message(sb: &Sandbox, name: &str) -> String {
    let written = status(sb, name)["values"]["lines_written"]
        .as_u64()
        .expect("status reports lines_written");
    let log = sb.path(&format!("{name}.log"));
    wait_for(
        &format!("a line numbered past {written} in the daemon's log file"),
        WAIT,
        || {
            read_lines(&log)
                .into_iter()
                .find(|l| l.seq > written)
                .map(|l| l.message)
        },
    )
}

#[test]
fn a_value_out_of_range_is_refused_naming_file_line_and_column_by_check_and_reload() {
    let (sb, _daemon) = sandbox_with_daemon("range", 20, &[]);
    let cfg = sb.path("range.toml");
    let log = sb.path("range.log");
    // Valid TOML, the right types: only the value is wrong, on line 3.
    std::fs::write(
        &cfg,
        format!(
            "log_file = {:?}\n# one line every ... ms\ninterval_ms = 0\nmessage = \"beta\"\n",
            log.display().to_string()
        ),
    )
    .unwrap();
    let reason = format!(
        "invalid config {}: line 3, column 15: interval_ms: must be between 1 and 3600000",
        cfg.display()
    );
    for op in ["check", "reload"] {
        let run = sb.ctl(&[op, "range"]).expect_code(1);
        assert!(run.stderr.contains(&reason), "{op}: {run}");
        let doc = sb.ctl(&["--json", op, "range"]).expect_code(1).json();
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains(&reason), "{op}: {doc}");
    }
    // Refused: the old configuration stays.
    let status = status(&sb, "range");
    assert_eq!(status["config_generation"], 1, "{status:#}");
    assert_eq!(status["values"]["message"], "alpha", "{status:#}");
}

#[test]
fn check_of_a_broken_config_exits_1_naming_file_and_line_and_changes_nothing() {
    let (sb, daemon) = sandbox_with_daemon("chkbad", 20, &[]);
    let cfg = sb.path("chkbad.toml");
    let log = sb.path("chkbad.log");
    std::fs::write(
        &cfg,
        format!(
            "log_file = {:?}\ninterval_ms = = 5\n",
            log.display().to_string()
        ),
    )
    .unwrap();

    let run = sb.ctl(&["check", "chkbad"]).expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("invalid config {}: line 2", cfg.display())),
        "{run}"
    );
    // A check applies nothing: it says the reload would refuse it, not that it was refused.
    assert!(run.stderr.contains("would be refused by a reload"), "{run}");
    let doc = sb.ctl(&["--json", "check", "chkbad"]).expect_code(1).json();
    assert_eq!(doc["operation"], "check", "{doc}");
    assert_eq!(doc["ok"], false, "{doc}");
    assert_eq!(doc["exit_code"], 1, "{doc}");
    assert_eq!(doc["error"]["kind"], "failed", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains(&cfg.display().to_string()), "{doc}");
    assert!(message.contains("line 2"), "{doc}");

    // The same file makes a reload fail the same way; the check before it left no trace.
    let status = status(&sb, "chkbad");
    assert_eq!(status["config_generation"], 1, "{status}");
    assert_eq!(status["last_reload"], serde_json::Value::Null, "{status}");
    assert_eq!(status["values"]["reload_runs"], 0, "{status}");
    assert_eq!(next_message(&sb, "chkbad"), "alpha");
    let reload = sb.ctl(&["reload", "chkbad"]).expect_code(1);
    assert!(
        reload
            .stderr
            .contains(&format!("invalid config {}: line 2", cfg.display())),
        "{reload}"
    );
    daemon.assert_alive();
}

#[test]
fn check_of_a_changed_config_announces_what_reload_then_applies() {
    let (sb, daemon) = sandbox_with_daemon("chk", 20, &[]);
    let log = sb.path("chk.log");
    std::fs::write(sb.path("chk.toml"), config(&log, 30, "beta")).unwrap();

    let doc = sb.ctl(&["--json", "check", "chk"]).expect_code(0).json();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["operation"], "check", "{doc}");
    assert_eq!(doc["target"], "chk", "{doc}");
    let checked = doc["result"].clone();
    assert_eq!(checked["generation"], 1, "{doc}");
    assert_eq!(checked["unchanged"], false, "{doc}");
    let summary = checked["summary"].as_str().unwrap().to_owned();
    assert_eq!(
        summary, "interval_ms 20 -> 30, message \"alpha\" -> \"beta\"",
        "{doc}"
    );
    let human = sb.ctl(&["check", "chk"]).expect_code(0);
    assert!(
        human
            .stdout
            .contains("a reload would apply: interval_ms 20 -> 30"),
        "{human}"
    );

    // Nothing applied: same generation, no reload recorded, still writing "alpha".
    let status_now = status(&sb, "chk");
    assert_eq!(status_now["config_generation"], 1, "{status_now}");
    assert_eq!(status_now["last_reload"], serde_json::Value::Null);
    assert_eq!(status_now["values"]["message"], "alpha", "{status_now}");
    assert_eq!(next_message(&sb, "chk"), "alpha");

    // The reload applies exactly what the check announced.
    let reloaded = sb.ctl(&["--json", "reload", "chk"]).expect_code(0).json();
    assert_eq!(reloaded["result"]["generation"], 2, "{reloaded}");
    assert_eq!(
        reloaded["result"]["summary"],
        summary.as_str(),
        "{reloaded}"
    );
    assert_eq!(next_message(&sb, "chk"), "beta");

    // Now the file is what runs: a reload would change nothing.
    let again = sb.ctl(&["--json", "check", "chk"]).expect_code(0).json();
    assert_eq!(again["result"]["generation"], 2, "{again}");
    assert_eq!(again["result"]["unchanged"], true, "{again}");
    let human = sb.ctl(&["check", "chk"]).expect_code(0);
    assert!(
        human.stdout.contains("a reload would change nothing"),
        "{human}"
    );
    let status_after = status(&sb, "chk");
    assert_eq!(status_after["config_generation"], 2, "{status_after}");
    assert_eq!(
        status_after["values"]["reload_runs"], 1,
        "checks do not run reloads: {status_after}"
    );
    daemon.assert_alive();
}

#[test]
fn check_waits_for_a_reload_in_progress_and_reports_what_it_applied() {
    let (sb, daemon) = sandbox_with_daemon("chkrace", 20, &[]);
    let log = sb.path("chkrace.log");
    let gate = sb.path("chkrace.gate");
    make_gate(&gate);
    std::fs::write(sb.path("chkrace.toml"), gated_config(&log, "beta", &gate)).unwrap();
    let reload = ctl_in_background(&sb, &["--json", "--timeout", HELD, "reload", "chkrace"]);
    // The reload has read the file and is held before applying it.
    wait_at_gate(&daemon, 1);
    sb.ctl(&[
        "log-level",
        "chkrace",
        "info,control_server::ops::reload=debug",
    ])
    .expect_code(0);
    let check = ctl_in_background(&sb, &["--json", "--timeout", HELD, "check", "chkrace"]);
    wait_logged(
        &daemon,
        "check requested: waiting for the reload in progress",
    );
    open_gate(&gate);

    let reload = reload.join().unwrap().expect_code(0).json();
    assert_eq!(reload["result"]["generation"], 2, "{reload}");
    // Not "generation 1, would change the message": that was no longer true when it answered.
    let check = check.join().unwrap().expect_code(0).json();
    assert_eq!(check["result"]["generation"], 2, "{check}");
    assert_eq!(check["result"]["unchanged"], true, "{check}");
}

#[test]
fn a_daemon_without_reload_has_no_check() {
    let (sb, daemon) = sandbox_with_daemon("chkno", 50, &["--disable", "reload"]);
    let run = sb.ctl(&["check", "chkno"]).expect_code(3);
    assert!(run.stderr.contains("does not support `check`"), "{run}");
    let doc = sb.ctl(&["--json", "check", "chkno"]).expect_code(3).json();
    assert_eq!(doc["error"]["kind"], "unsupported", "{doc}");
    let hello = sb.ctl(&["--json", "hello", "chkno"]).expect_code(0).json();
    let operations = hello["result"]["operations"].as_array().unwrap();
    assert!(!operations.contains(&"check".into()), "{hello}");
    assert!(operations.contains(&"status".into()), "{hello}");
    daemon.assert_alive();
}

fn wait_logged(daemon: &Daemon, line: &str) {
    wait_for(&format!("{line:?} in the daemon's log"), WAIT, || {
        daemon.log().contains(line).then_some(())
    });
}
