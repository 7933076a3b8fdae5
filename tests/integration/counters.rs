//! `ctl counters`: the daemon's counters and the server's own, aligned for people, as JSON, and
//! in the Prometheus exposition format, read back by a real parser (Python's
//! prometheus_client).

use crate::{config, sandbox_with_daemon};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use tests::{run, wait_for, Sandbox, WAIT};

/// `ctl --json counters NAME`'s counters, by name: (kind, value, help).
fn counters(sb: &Sandbox, name: &str) -> BTreeMap<String, (String, i64, String)> {
    let doc = sb.ctl(&["--json", "counters", name]).expect_code(0).json();
    doc["result"]["counters"]
        .as_array()
        .unwrap_or_else(|| panic!("no counters: {doc}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                (
                    c["kind"].as_str().unwrap().to_owned(),
                    c["value"].as_i64().unwrap(),
                    c["help"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

fn value(counters: &BTreeMap<String, (String, i64, String)>, name: &str) -> i64 {
    counters
        .get(name)
        .unwrap_or_else(|| panic!("no counter {name}: {counters:?}"))
        .1
}

/// Parses an exposition with prometheus_client and returns its families as JSON:
/// `[{"name", "type", "help", "samples": [[name, labels, value]]}]`.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = [
    {"name": f.name, "type": f.type, "help": f.documentation,
     "samples": [[s.name, s.labels, s.value] for s in f.samples]}
    for f in text_string_to_metric_families(open(sys.argv[1]).read())
]
print(json.dumps(families))
"#;

#[test]
fn counters_in_human_json_and_prometheus_form() {
    let (sb, daemon) = sandbox_with_daemon("cnt", 20, &[]);
    wait_for("three lines counted", WAIT, || {
        (value(&counters(&sb, "cnt"), "demo.lines_written") >= 3).then_some(())
    });

    // JSON: the envelope, then each counter with its kind, value and help.
    let doc = sb.ctl(&["--json", "counters", "cnt"]).expect_code(0).json();
    assert_eq!(doc["operation"], "counters", "{doc}");
    assert_eq!(doc["ok"], true, "{doc}");
    let all = counters(&sb, "cnt");
    let lines = &all["demo.lines_written"];
    assert_eq!(
        (lines.0.as_str(), lines.2.as_str()),
        (
            "counter",
            "Lines written to the log file (the daemon's own log lines included)"
        )
    );
    assert_eq!(all["demo.interval_ms"].0, "gauge");
    assert_eq!(value(&all, "demo.interval_ms"), 20);
    assert!(value(&all, "ctl.calls.counters.ok") >= 1, "{all:?}");
    // The daemon's own first, then the server's.
    let names: Vec<&str> = doc["result"]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names[0].starts_with("demo."), "{names:?}");
    assert!(names.last().unwrap().starts_with("ctl."), "{names:?}");

    // Human, filtered by prefix: one aligned line each.
    let human = sb.ctl(&["counters", "cnt", "demo."]).expect_code(0);
    let rows: Vec<&str> = human.stdout.lines().collect();
    assert_eq!(rows.len(), 5, "{human}");
    assert!(
        rows.iter().all(|r| r.starts_with("demo.")),
        "only the prefix: {human}"
    );
    assert!(
        rows.iter().all(|r| r.len() == rows[0].len()),
        "names padded, values aligned right: {human}"
    );
    let interval = rows
        .iter()
        .find(|r| r.starts_with("demo.interval_ms "))
        .unwrap_or_else(|| panic!("{human}"));
    assert!(interval.ends_with(" 20"), "{human}");
    // A prefix nothing matches says so, not that the daemon has none.
    let none = sb.ctl(&["counters", "cnt", "nosuch."]).expect_code(0);
    assert_eq!(
        none.stdout.trim(),
        "cnt: no counter's name starts with nosuch.",
        "{none}"
    );
    let none = sb
        .ctl(&["--json", "counters", "cnt", "nosuch."])
        .expect_code(0)
        .json();
    assert_eq!(none["result"]["counters"], serde_json::json!([]), "{none}");
    let prefixed = sb
        .ctl(&["--json", "counters", "cnt", "ctl.calls."])
        .expect_code(0)
        .json();
    let prefixed = prefixed["result"]["counters"].as_array().unwrap();
    assert!(!prefixed.is_empty());
    assert!(prefixed
        .iter()
        .all(|c| c["name"].as_str().unwrap().starts_with("ctl.calls.")));

    // Prometheus, written the way docs/operators.md has node_exporter's textfile collector
    // read it, then parsed by a real parser.
    let Some(python) = tests::require_python_module("prometheus_client") else {
        return;
    };
    let textfile_dir = sb.path("textfile");
    std::fs::create_dir(&textfile_dir).unwrap();
    let snippet = "ctl counters --prometheus cnt > \"$DIR/cnt.prom.$$\" && \
                   mv \"$DIR/cnt.prom.$$\" \"$DIR/cnt.prom\"";
    let ctl_dir = tests::bins().ctl.parent().unwrap().to_owned();
    run(Command::new("sh")
        .args(["-c", snippet])
        .env("DIR", &textfile_dir)
        .env(
            "PATH",
            format!("{}:{}", ctl_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("CTL_SOCKET_DIR", sb.socket_dir()))
    .expect_code(0);
    let prom = textfile_dir.join("cnt.prom");
    let parsed = run(Command::new(&python).args(["-c", PARSE]).arg(&prom)).expect_code(0);
    let families: Value =
        serde_json::from_str(&parsed.stdout).unwrap_or_else(|e| panic!("{e}: {parsed}"));
    let families = families.as_array().unwrap();
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(families.len(), all.len(), "one family per counter:\n{text}");
    let family = |name: &str| -> &Value {
        families
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no family {name}:\n{text}"))
    };
    let lines = family("demo_lines_written");
    assert_eq!(lines["type"], "counter", "{lines}");
    assert_eq!(
        lines["help"], "Lines written to the log file (the daemon's own log lines included)",
        "{lines}"
    );
    assert_eq!(
        lines["samples"][0][0], "demo_lines_written_total",
        "{lines}"
    );
    assert_eq!(lines["samples"][0][1], json!({"daemon": "cnt"}), "{lines}");
    assert!(lines["samples"][0][2].as_f64().unwrap() >= 3.0, "{lines}");
    let interval = family("demo_interval_ms");
    assert_eq!(interval["type"], "gauge", "{interval}");
    assert_eq!(interval["samples"][0][0], "demo_interval_ms", "{interval}");
    assert_eq!(interval["samples"][0][2].as_f64(), Some(20.0), "{interval}");
    // Every sample says which daemon it is from.
    for f in families {
        for sample in f["samples"].as_array().unwrap() {
            assert_eq!(sample[1], json!({"daemon": "cnt"}), "{f}");
        }
    }
    // Server counters, their names made valid (`log-level` has a dash).
    assert_eq!(family("ctl_calls_log_level_ok")["type"], "counter");
    assert_eq!(family("ctl_connections_open")["type"], "gauge");
    daemon.assert_alive();
}

/// Writes `ctl counters --prometheus NAME` into `dir/NAME.prom` with the guide's recipe
/// (docs/operators.md), as cron would for each daemon.
fn write_textfile(sb: &Sandbox, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let snippet = "ctl counters --prometheus \"$NAME\" > \"$DIR/$NAME.prom.$$\" && \
                   mv \"$DIR/$NAME.prom.$$\" \"$DIR/$NAME.prom\"";
    let ctl_dir = tests::bins().ctl.parent().unwrap().to_owned();
    run(Command::new("sh")
        .args(["-c", snippet])
        .env("DIR", dir)
        .env("NAME", name)
        .env(
            "PATH",
            format!("{}:{}", ctl_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("CTL_SOCKET_DIR", sb.socket_dir()))
    .expect_code(0);
    dir.join(format!("{name}.prom"))
}

/// Two daemons on one host feed one node_exporter, one file each in its textfile directory:
/// read together (node_exporter merges the files), no series appears twice, since each sample
/// is labelled with its daemon.
#[test]
fn two_daemons_expositions_read_together_have_no_duplicate_series() {
    let (sb, first) = sandbox_with_daemon("web", 20, &[]);
    let second = crate::start_demo(&sb, "mail", 20, &[]);
    let Some(python) = tests::require_python_module("prometheus_client") else {
        return;
    };
    let dir = sb.path("textfile");
    std::fs::create_dir(&dir).unwrap();
    let mut together = String::new();
    for name in ["web", "mail"] {
        let text = std::fs::read_to_string(write_textfile(&sb, &dir, name)).unwrap();
        together.push_str(&text);
        together.push('\n');
    }
    let all = sb.path("all.prom");
    std::fs::write(&all, &together).unwrap();
    let parsed = run(Command::new(&python).args(["-c", PARSE]).arg(&all)).expect_code(0);
    let families: Value =
        serde_json::from_str(&parsed.stdout).unwrap_or_else(|e| panic!("{e}: {parsed}"));
    let mut series = BTreeMap::new();
    let mut daemons = std::collections::BTreeSet::new();
    for f in families.as_array().unwrap() {
        for sample in f["samples"].as_array().unwrap() {
            let key = (
                sample[0].as_str().unwrap().to_owned(),
                sample[1].to_string(),
            );
            daemons.insert(sample[1]["daemon"].as_str().map(str::to_owned));
            assert!(
                series.insert(key.clone(), ()).is_none(),
                "{key:?} twice:\n{together}"
            );
        }
    }
    assert_eq!(
        daemons.into_iter().collect::<Vec<_>>(),
        [Some("mail".to_owned()), Some("web".to_owned())],
        "{together}"
    );
    assert!(series.contains_key(&(
        "ctl_calls_counters_ok_total".to_owned(),
        json!({"daemon": "mail"}).to_string()
    )));
    first.assert_alive();
    second.assert_alive();
}

#[test]
fn the_servers_own_counters_move_with_calls() {
    if !tests::require_root() {
        return;
    }
    let (sb, daemon) = sandbox_with_daemon(
        "moving",
        50,
        &["--socket-mode", "666", "--max-connections", "2"],
    );
    sb.open_to_other_users();
    let before = counters(&sb, "moving");

    for _ in 0..3 {
        sb.ctl(&["status", "moving"]).expect_code(0);
    }
    sb.ctl(&["rotate", "moving"]).expect_code(0);
    let cfg = sb.path("moving.toml");
    std::fs::write(&cfg, "interval_ms = = 5\n").unwrap();
    sb.ctl(&["reload", "moving"]).expect_code(1);
    std::fs::write(&cfg, config(&sb.path("moving.log"), 40, "beta")).unwrap();
    sb.ctl(&["reload", "moving"]).expect_code(0);
    // Refused by the daemon's policy: nobody may connect (mode 666) but not call.
    sb.ctl_as_nobody(&["status", "moving"]).expect_code(77);
    // Two connections that say nothing fill the cap; the next caller makes room by dropping
    // the oldest of them. The kernel hands connections over in order, so they come first.
    let _silent: Vec<_> = (0..2)
        .map(|_| std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap())
        .collect();
    sb.ctl(&["status", "moving"]).expect_code(0);

    let after = counters(&sb, "moving");
    let delta = |name: &str| value(&after, name) - value(&before, name);
    assert_eq!(delta("ctl.calls.status.ok"), 4, "{after:?}");
    assert_eq!(delta("ctl.calls.rotate.ok"), 1, "{after:?}");
    assert_eq!(delta("ctl.rotations.ok"), 1, "{after:?}");
    assert_eq!(delta("ctl.calls.reload.failed"), 1, "{after:?}");
    assert_eq!(delta("ctl.calls.reload.ok"), 1, "{after:?}");
    assert_eq!(delta("ctl.reloads.failed"), 1, "{after:?}");
    assert_eq!(delta("ctl.reloads.ok"), 1, "{after:?}");
    assert_eq!(delta("ctl.refused"), 1, "{after:?}");
    assert!(delta("ctl.connections.evicted") >= 1, "{after:?}");
    // Every ctl run is a connection of its own: nine since, plus the two silent ones.
    assert!(delta("ctl.connections.accepted") >= 11, "{after:?}");
    assert!(value(&after, "ctl.connections.open") >= 1, "{after:?}");
    // The daemon's gauge follows the reload at its next line.
    wait_for("the interval gauge to follow the reload", WAIT, || {
        (value(&counters(&sb, "moving"), "demo.interval_ms") == 40).then_some(())
    });
    daemon.assert_alive();
}
