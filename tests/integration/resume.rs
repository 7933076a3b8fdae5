//! `resume`: a drain undone, the daemon serving again; and a drain still waiting when it comes.

use crate::{config, sandbox_with_daemon};
use std::process::Command;
use tests::{bins, read_lines, run, wait_for, Sandbox, WAIT};

fn draining(sb: &Sandbox, name: &str) -> bool {
    let doc = sb.ctl(&["--json", "status", name]).expect_code(0).json();
    doc["result"]["draining"]
        .as_bool()
        .expect("draining is a bool")
}

#[test]
fn resume_undoes_a_drain_and_the_demo_writes_lines_again() {
    let (sb, daemon) = sandbox_with_daemon("rs", 20, &[]);
    let log = sb.path("rs.log");
    wait_for("a first line", WAIT, || {
        (!read_lines(&log).is_empty()).then_some(())
    });

    sb.ctl(&["drain", "rs"]).expect_code(0);
    assert!(draining(&sb, "rs"));
    let run = sb.ctl(&["status", "rs"]).expect_code(0);
    assert!(run.stdout.contains("draining, 0 in flight"), "{run}");
    wait_for("the worker to stop", WAIT, || {
        daemon
            .log()
            .contains("draining: no longer writing lines")
            .then_some(())
    });
    let last = read_lines(&log).last().expect("lines before the drain").seq;

    let run = sb.ctl(&["resume", "rs"]).expect_code(0);
    assert_eq!(run.stdout, "rs: resumed; taking new work again\n", "{run}");
    assert!(!draining(&sb, "rs"));
    let run = sb.ctl(&["status", "rs"]).expect_code(0);
    assert!(run.stdout.contains("serving, "), "{run}");
    // New lines, numbered on from the last one before the drain: none lost, none repeated.
    let lines = wait_for("lines after the resume", WAIT, || {
        let lines = read_lines(&log);
        (lines.last().is_some_and(|l| l.seq >= last + 3)).then_some(lines)
    });
    let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(daemon.log().contains("resumed: writing lines again"));

    // Nothing to undo is not an error; the reply says so.
    let doc = sb.ctl(&["--json", "resume", "rs"]).expect_code(0).json();
    assert_eq!(doc["result"]["was_draining"], false, "{doc}");
    let run = sb.ctl(&["resume", "rs"]).expect_code(0);
    assert!(
        run.stdout.contains("not draining; nothing to resume"),
        "{run}"
    );

    // And it can be drained again.
    sb.ctl(&["drain", "rs"]).expect_code(0);
    assert!(draining(&sb, "rs"));
    daemon.assert_alive();
}

#[test]
fn resume_ends_a_drain_still_waiting_as_not_completed() {
    let sb = Sandbox::new();
    let log = sb.path("rw.log");
    // Start-up jobs without a `job_gate` never end.
    let cfg = sb.write_config(
        "rw.toml",
        &format!("{}startup_jobs = 2\n", config(&log, 20, "alpha")),
    );
    let daemon = sb.start_daemon("rw", &cfg, &[]);
    let mut cmd = Command::new(&bins().ctl);
    cmd.args(["--timeout", "60s", "--json", "drain", "rw"])
        .env("CTL_SOCKET_DIR", sb.socket_dir());
    let drain = std::thread::spawn(move || run(&mut cmd));
    wait_for("the drain to begin", WAIT, || {
        draining(&sb, "rw").then_some(())
    });

    let doc = sb.ctl(&["--json", "resume", "rw"]).expect_code(0).json();
    assert_eq!(doc["result"]["was_draining"], true, "{doc}");
    // The drain ends now, long before its deadline, and says why: exit 1, not completed.
    let drain = drain.join().unwrap().expect_code(1);
    let doc = drain.json();
    assert_eq!(doc["result"]["completed"], false, "{drain}");
    assert_eq!(doc["result"]["resumed"], true, "{drain}");
    assert_eq!(doc["result"]["in_flight"], 2, "{drain}");
    assert!(!draining(&sb, "rw"));
    daemon.assert_alive();
}

#[test]
fn a_drain_undone_by_resume_says_so_in_words() {
    let sb = Sandbox::new();
    let log = sb.path("rh.log");
    // Start-up jobs without a `job_gate` never end.
    let cfg = sb.write_config(
        "rh.toml",
        &format!("{}startup_jobs = 1\n", config(&log, 20, "alpha")),
    );
    let _daemon = sb.start_daemon("rh", &cfg, &[]);
    let mut cmd = Command::new(&bins().ctl);
    cmd.args(["--timeout", "60s", "drain", "rh"])
        .env("CTL_SOCKET_DIR", sb.socket_dir());
    let drain = std::thread::spawn(move || run(&mut cmd));
    wait_for("the drain to begin", WAIT, || {
        draining(&sb, "rh").then_some(())
    });
    sb.ctl(&["resume", "rh"]).expect_code(0);
    let drain = drain.join().unwrap().expect_code(1);
    assert!(
        drain
            .stderr
            .contains("rh: the drain was undone by a resume before it completed (1 in flight)"),
        "{drain}"
    );
}

#[test]
fn a_daemon_without_drain_cannot_resume() {
    let (sb, daemon) = sandbox_with_daemon("rn", 20, &["--disable", "drain"]);
    let run = sb.ctl(&["hello", "rn"]).expect_code(0);
    assert!(!run.stdout.contains("resume"), "{run}");
    let run = sb.ctl(&["resume", "rn"]).expect_code(3);
    assert!(run.stderr.contains("does not support `resume`"), "{run}");
    let doc = sb.ctl(&["--json", "resume", "rn"]).expect_code(3).json();
    assert_eq!(doc["error"]["kind"], "unsupported", "{doc}");
    daemon.assert_alive();
}

#[test]
fn the_demo_refuses_to_disable_resume_alone() {
    let run = run(Command::new(&bins().demo).args(["--disable", "resume"]));
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains("--disable drain turns off both"),
        "{run}"
    );
}

#[test]
fn status_values_are_typed_and_in_the_daemons_order() {
    let (sb, _daemon) = sandbox_with_daemon("tv", 20, &[]);
    let names = [
        "lines_written",
        "interval",
        "lines_per_second",
        "message",
        "reload_runs",
    ];
    let run = sb.ctl(&["--json", "status", "tv"]).expect_code(0);
    // The order as printed (a parsed `Value` here sorts its keys).
    let values_text = &run.stdout[run.stdout.find(r#""values":"#).expect("values")..];
    let at: Vec<usize> = names
        .iter()
        .map(|n| values_text.find(&format!("\"{n}\":")).expect(n))
        .collect();
    assert!(at.is_sorted(), "not in the daemon's order: {run}");
    let doc = run.json();
    let values = doc["result"]["values"]
        .as_object()
        .expect("values is an object");
    assert_eq!(values.len(), names.len(), "{doc}");
    assert!(values["lines_written"].is_u64(), "{doc}");
    assert_eq!(
        values["interval"],
        serde_json::json!({"ms": 20, "human": "20ms"})
    );
    assert_eq!(values["lines_per_second"], 50.0);
    assert_eq!(values["message"], "alpha");
    assert_eq!(values["reload_runs"], 0);
    // The text fields stay, for scripts written against them.
    assert_eq!(doc["result"]["fields"]["interval"], "20ms");
    assert_eq!(doc["result"]["fields"]["reload_runs"], "0");
    assert!(doc["result"]["fields"]["lines_written"].is_string());

    // People see them aligned to the longest name (lines_per_second, 16), in the same order.
    let run = sb.ctl(&["status", "tv"]).expect_code(0);
    let rows: Vec<&str> = run.stdout.lines().skip(1).collect();
    for row in &rows {
        assert_eq!(&row[..2], "  ", "{run}");
        assert_eq!(row.as_bytes()[2 + 16], b' ', "{run}");
        assert_ne!(row.as_bytes()[2 + 17], b' ', "{run}");
    }
    let order: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.split_whitespace().next())
        .filter(|name| values.contains_key(*name))
        .collect();
    assert_eq!(order, names, "{run}");
    assert!(run.stdout.contains("\n  interval         20ms\n"), "{run}");
    assert!(run.stdout.contains("\n  lines_per_second 50\n"), "{run}");
}
