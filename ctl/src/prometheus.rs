//! `ctl counters --prometheus`: the counters in the Prometheus text exposition format (version
//! 0.0.4), the format node_exporter's textfile collector reads. Every sample carries the label
//! `daemon="NAME"`, NAME as the daemon's `hello` gives it: every daemon has the server's
//! `ctl_calls_*` and `ctl_connections_*`, and without the label two daemons' files in one
//! collector directory would give the same series twice, which node_exporter refuses.

use control_api::{CounterKind, CounterValue};
use std::collections::HashSet;

/// The exposition of `counters`: `# HELP`, `# TYPE` and one sample per counter, without a
/// final newline. Names are made valid metric names ([`metric_name`]); a counter whose name
/// then equals an earlier one's is left out (the format allows a family only once) and named
/// in the second value, for a warning. Each sample is labelled `daemon="DAEMON"`.
pub fn exposition(daemon: &str, counters: &[CounterValue]) -> (String, Vec<String>) {
    let labels = format!("{{daemon=\"{}\"}}", escape_label_value(daemon));
    let mut seen = HashSet::new();
    let mut skipped = Vec::new();
    let mut out = Vec::new();
    for c in counters {
        let name = metric_name(&c.name, c.kind);
        if !seen.insert(name.clone()) {
            skipped.push(c.name.clone());
            continue;
        }
        let kind = match c.kind {
            CounterKind::Counter => "counter",
            CounterKind::Gauge => "gauge",
        };
        out.push(format!("# HELP {name} {}", escape_help(&c.help)));
        out.push(format!("# TYPE {name} {kind}"));
        out.push(format!("{name}{labels} {}", c.value));
    }
    (out.join("\n"), skipped)
}

/// A valid metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`: every other character becomes `_`, a
/// leading digit gets a `_` before it, and a counter ends in `_total`, as Prometheus names
/// counters (`web.requests` becomes `web_requests_total`).
pub fn metric_name(name: &str, kind: CounterKind) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if kind == CounterKind::Counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

/// Help text as the format wants it: a backslash as `\\`, a line break as `\n`.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value as the format wants it: a backslash as `\\`, a double quote as `\"`, a line
/// break as `\n`.
fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(name: &str, kind: CounterKind, help: &str) -> CounterValue {
        CounterValue {
            name: name.into(),
            kind,
            value: 3,
            help: help.into(),
        }
    }

    #[test]
    fn names_become_valid_metric_names() {
        assert_eq!(
            metric_name("ctl.calls.log-level.ok", CounterKind::Counter),
            "ctl_calls_log_level_ok_total"
        );
        assert_eq!(metric_name("9lives", CounterKind::Gauge), "_9lives");
        assert_eq!(metric_name("a:b_total", CounterKind::Counter), "a:b_total");
        assert_eq!(metric_name("", CounterKind::Gauge), "_");
    }

    #[test]
    fn help_and_the_daemon_label_are_escaped_and_a_clashing_name_is_left_out() {
        let (text, skipped) = exposition(
            "d\\\"\n",
            &[
                counter("a.b", CounterKind::Gauge, "back\\slash\nnewline"),
                counter("a_b", CounterKind::Gauge, "clash"),
            ],
        );
        assert_eq!(
            text,
            "# HELP a_b back\\\\slash\\nnewline\n# TYPE a_b gauge\na_b{daemon=\"d\\\\\\\"\\n\"} 3"
        );
        assert_eq!(skipped, ["a_b"]);
    }
}
