//! The C library (`control-server-c`): a daemon written in C (`c/cdaemon.c`, built with `cc`
//! against `ctl_server.h` and the static library once per run), driven by the real `ctl`, the
//! real logrotate and the hostile client; and the header checked against what the library
//! exports.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;
use tests::{bins, run, wait_for, Daemon, Run, Sandbox, WAIT};

/// What the static library needs from the system, as `cargo rustc -p control-server-c
/// --crate-type staticlib -- --print native-static-libs` prints it (the header says the same).
const NATIVE_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../control-server-c/include")
}

/// Compiles `source` against the header and the static library into cargo's temporary
/// directory for tests, as `name`.
fn build_c(source: &Path, name: &str) -> PathBuf {
    let include = include_dir();
    let flags: Vec<&OsStr> = ["-O", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"]
        .into_iter()
        .map(OsStr::new)
        .chain([include.as_os_str()])
        .collect();
    let libs: Vec<&OsStr> = [bins().c_library.as_os_str()]
        .into_iter()
        .chain(NATIVE_LIBS.iter().map(OsStr::new))
        .collect();
    tests::compile_c(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        source,
        name,
        &flags,
        &libs,
    )
}

/// `cdaemon`, compiled once per test run.
fn cdaemon() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/c/cdaemon.c");
        build_c(&source, "cdaemon")
    })
}

/// A running `cdaemon NAME` in `sb`, with its config `NAME.conf` (rate `rate`), log `NAME.log`
/// and port file `NAME.port`; ready once its socket accepts.
fn start(sb: &Sandbox, name: &str, rate: &str) -> Daemon {
    let config = sb.path(&format!("{name}.conf"));
    std::fs::write(&config, format!("# lines per tick\n{rate}\n")).unwrap();
    let stdout = sb.path(&format!("{name}.stdout"));
    let stderr = sb.path(&format!("{name}.stderr"));
    let child = Command::new(cdaemon())
        .arg(name)
        .arg(&config)
        .arg(sb.path(&format!("{name}.log")))
        .arg(sb.path(&format!("{name}.port")))
        .env("CTL_SOCKET_DIR", sb.socket_dir())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("spawn cdaemon");
    let daemon = Daemon {
        child,
        socket: sb.socket_dir().join(format!("{name}.sock")),
        stdout,
        stderr,
    };
    daemon.wait_ready();
    daemon
}

/// Stops the daemon with SIGTERM and checks every numbered line it wrote is in one of `NAME.log*`
/// exactly once, whole; returns how many it wrote.
fn stop_and_count_lines(sb: &Sandbox, mut daemon: Daemon, name: &str) -> u64 {
    daemon.signal(rustix::process::Signal::TERM);
    let status = daemon.wait_exit();
    assert!(
        status.success(),
        "cdaemon exited with {status}:\n{}",
        daemon.log()
    );
    let mut seen = BTreeSet::new();
    let mut stopped = None;
    let prefix = format!("{name}.log");
    for entry in std::fs::read_dir(sb.path("")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !file.starts_with(&prefix) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{file} ends in half a line"
        );
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("stopped lines=") {
                stopped = Some(n.parse::<u64>().unwrap());
                continue;
            }
            let seq: u64 = line
                .strip_prefix("seq=")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{file}: a line that is not whole: {line:?}"));
            assert!(seen.insert(seq), "line {seq} is written twice ({file})");
        }
    }
    let written = stopped.expect("the daemon's last line, `stopped lines=N`");
    assert_eq!(seen.len() as u64, written, "lines are missing");
    assert_eq!(seen.last().copied(), written.checked_sub(1));
    written
}

fn status(sb: &Sandbox, name: &str) -> serde_json::Value {
    sb.ctl(&["--json", "status", name]).expect_code(0).json()["result"].clone()
}

/// The functions `ctl_server.h` declares, by name.
fn declared() -> BTreeSet<String> {
    let header = std::fs::read_to_string(include_dir().join("ctl_server.h")).unwrap();
    let mut names = BTreeSet::new();
    for line in header.lines() {
        let line = line.trim_start();
        if line.starts_with('*') || line.starts_with("/*") || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("ctl_") {
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            // A declaration: the name followed by its parameters (not `(*ctl_x_fn)(`).
            if tail[len..].starts_with('(') && !rest[..at].ends_with("(*") {
                names.insert(tail[..len].to_owned());
            }
            rest = &tail[len..];
        }
    }
    names
}

#[test]
fn c_header_declares_exactly_what_the_library_exports_and_compiles_as_c_and_cpp() {
    let names = declared();
    assert!(names.len() > 30, "the header's functions: {names:?}");
    // What the static library defines, from `nm`.
    let out = Command::new("nm")
        .args(["-g", "--defined-only"])
        .arg(&bins().c_library)
        .output()
        .expect("run nm (binutils)");
    assert!(out.status.success());
    let exported: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().collect::<Vec<_>>().get(2).copied())
        .filter(|sym| sym.starts_with("ctl_"))
        .map(str::to_owned)
        .collect();
    assert_eq!(names, exported, "header (left) and library (right) differ");

    // A program that takes every declared function's address links against the library, and
    // the header compiles as C and as C++ with every warning an error.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("abi.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("abi.c");
    let table: String = names
        .iter()
        .map(|n| format!("    (void (*)(void)){n},\n"))
        .collect();
    std::fs::write(
        &source,
        format!(
            "#include \"ctl_server.h\"\n#include <stdio.h>\n\
             static void (*const fns[])(void) = {{\n{table}}};\n\
             int main(void) {{ printf(\"%zu\\n\", sizeof fns / sizeof fns[0]); \
             return *ctl_last_error(); }}\n"
        ),
    )
    .unwrap();
    let abi = build_c(&source, "ctl-abi");
    let out = run(&mut Command::new(&abi));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), names.len().to_string());
    // The same program against the shared library.
    let lib_dir = bins().c_library.parent().unwrap();
    let shared = dir.join("abi-shared");
    let out = run(Command::new("cc")
        .args(["-Wall", "-Werror", "-I"])
        .arg(include_dir())
        .arg("-o")
        .arg(&shared)
        .arg(&source)
        .arg("-L")
        .arg(lib_dir)
        .arg("-lcontrol_server_c"));
    assert_eq!(
        out.code,
        Some(0),
        "linking against the shared library: {out}"
    );
    let out = run(Command::new(&shared).env("LD_LIBRARY_PATH", lib_dir));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), names.len().to_string());
    if tests::have_program("c++") {
        let out = run(Command::new("c++")
            .args([
                "-x",
                "c++",
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-I",
            ])
            .arg(include_dir())
            .arg(&source));
        assert_eq!(out.code, Some(0), "the header as C++: {out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn c_daemon_status_reload_check_call_describe_counters_through_ctl() {
    let sb = Sandbox::new();
    let daemon = start(&sb, "cd", "5");

    // Status: the server's part and the daemon's two fields, typed.
    let st = status(&sb, "cd");
    assert_eq!(st["pid"], daemon.pid());
    assert_eq!(st["version"], "1.0.0");
    assert_eq!(st["values"]["rate"], 5);
    assert!(st["values"]["lines_written"].is_u64(), "{st}");
    assert_eq!(st["log_files"][0], sb.path("cd.log").display().to_string());
    let text = sb.ctl(&["status", "cd"]).expect_code(0).stdout;
    assert!(
        text.contains("rate") && text.contains("lines_written"),
        "{text}"
    );

    // A bad config is refused, naming the line; the old one stays.
    let config = sb.path("cd.conf");
    std::fs::write(&config, "# comment\n\nfast\n").unwrap();
    let refused = sb.ctl(&["reload", "cd"]).expect_code(1);
    assert!(
        refused.stderr.contains("line 3") && refused.stderr.contains("`fast`"),
        "{refused}"
    );
    sb.ctl(&["check", "cd"]).expect_code(1);
    assert_eq!(status(&sb, "cd")["values"]["rate"], 5);
    assert_eq!(status(&sb, "cd")["config_generation"], 1);

    // A good one: check says what reload would do, and applies nothing; reload applies it.
    std::fs::write(&config, "8\n").unwrap();
    let check = sb.ctl(&["check", "cd"]).expect_code(0);
    assert!(check.stdout.contains("rate 5 -> 8"), "{check}");
    assert_eq!(status(&sb, "cd")["values"]["rate"], 5);
    let reload = sb.ctl(&["reload", "cd"]).expect_code(0);
    assert!(reload.stdout.contains("rate 5 -> 8"), "{reload}");
    let st = status(&sb, "cd");
    assert_eq!(
        (
            st["values"]["rate"].clone(),
            st["config_generation"].clone()
        ),
        (8.into(), 2.into())
    );

    // The command: its reply is the handler's JSON; the schema refuses 0, naming the field.
    let call = sb
        .ctl(&["--json", "call", "cd", "set-rate", "rate=5"])
        .expect_code(0)
        .json();
    assert_eq!(
        call["result"],
        serde_json::json!({"rate": 5, "previous": 8}),
        "{call}"
    );
    assert_eq!(status(&sb, "cd")["values"]["rate"], 5);
    let zero = sb.ctl(&["call", "cd", "set-rate", "rate=0"]).expect_code(2);
    assert!(zero.stderr.contains("`rate`"), "{zero}");
    sb.ctl(&["call", "cd", "set-rate"]).expect_code(2);
    assert_eq!(status(&sb, "cd")["values"]["rate"], 5);

    // describe lists it with its doc, access and schema.
    let doc = sb.ctl(&["--json", "describe", "cd"]).expect_code(0).json();
    let ops = doc["result"]["operations"].as_array().unwrap();
    let op = ops
        .iter()
        .find(|o| o["name"] == "set-rate")
        .expect("set-rate described");
    assert_eq!(op["access"], "operate");
    assert_eq!(op["kind"], "command");
    assert_eq!(op["args"]["properties"]["rate"]["maximum"], 1000);
    for builtin in [
        "reload", "check", "rotate", "drain", "resume", "status", "counters",
    ] {
        assert!(
            ops.iter().any(|o| o["name"] == builtin),
            "{builtin} missing: {doc}"
        );
    }

    // Counters: the daemon's, counting, and the server's own.
    let counter = |name: &str| {
        let doc = sb.ctl(&["--json", "counters", "cd"]).expect_code(0).json();
        doc["result"]["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no counter {name}: {doc}"))["value"]
            .as_u64()
            .unwrap()
    };
    let first = counter("lines.written");
    wait_for("lines.written to grow", WAIT, || {
        (counter("lines.written") > first).then_some(())
    });
    assert_eq!(counter("ctl.calls.set-rate.ok"), 1);
    assert_eq!(counter("ctl.reloads.failed"), 1);

    stop_and_count_lines(&sb, daemon, "cd");
}

/// The port the daemon listens on now, once it has written one other than `not`.
fn port(sb: &Sandbox, not: Option<u16>) -> u16 {
    wait_for("the port file", WAIT, || {
        let text = std::fs::read_to_string(sb.path("dr.port")).ok()?;
        let port: u16 = text.trim().parse().ok()?;
        (Some(port) != not).then_some(port)
    })
}

fn greeting(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(WAIT))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

#[test]
fn c_daemon_drain_closes_its_listener_and_resume_opens_it_again() {
    let sb = Sandbox::new();
    let daemon = start(&sb, "dr", "5");
    let first = port(&sb, None);
    assert_eq!(greeting(first).unwrap(), "hello dr\n");

    let drained = sb.ctl(&["drain", "dr"]).expect_code(0);
    assert!(drained.stdout.contains("drained"), "{drained}");
    assert_eq!(status(&sb, "dr")["draining"], true);
    // The daemon's thread, blocked in ctl_work_wait_draining, closed the listener.
    wait_for("the listener to close", WAIT, || {
        greeting(first).is_err().then_some(())
    });

    let resumed = sb.ctl(&["resume", "dr"]).expect_code(0);
    assert!(resumed.stdout.contains("dr: resumed"), "{resumed}");
    // Again: nothing to undo, and the callback's drain is over too.
    let again = sb.ctl(&["resume", "dr"]).expect_code(0);
    assert!(again.stdout.contains("not draining"), "{again}");
    let st = status(&sb, "dr");
    assert_eq!(st["draining"], false);
    // The callback form was called too: once for the drain, once for each resume.
    assert_eq!(st["values"]["drain_callbacks"], 3, "{st}");
    let again = port(&sb, Some(first));
    assert_eq!(greeting(again).unwrap(), "hello dr\n");
    wait_for("both clients counted", WAIT, || {
        let doc = sb.ctl(&["--json", "counters", "dr"]).expect_code(0).json();
        let n = doc["result"]["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "clients.served")?["value"]
            .as_u64()?;
        (n == 2).then_some(())
    });
    stop_and_count_lines(&sb, daemon, "dr");
}

fn require_logrotate() {
    let found = Command::new("logrotate").arg("--version").output().is_ok();
    assert!(
        found,
        "logrotate is not installed: apt-get install -y logrotate (`bash .ci/test` does)"
    );
}

fn logrotate(sb: &Sandbox, log: &Path, name: &str) -> Run {
    let conf = sb.path("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n    rotate 50\n    missingok\n    nocompress\n    sharedscripts\n    \
             postrotate\n        {} --timeout 10s --quiet rotate {name}\n    endscript\n}}\n",
            log.display(),
            bins().ctl.display()
        ),
    )
    .unwrap();
    run(Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(sb.path("logrotate.state"))
        .arg(&conf)
        .env("CTL_SOCKET_DIR", sb.socket_dir()))
}

#[test]
fn c_daemon_logrotate_with_ctl_rotate_under_load_loses_and_duplicates_no_line() {
    require_logrotate();
    let sb = Sandbox::new();
    let daemon = start(&sb, "lrc", "5");
    let log = sb.path("lrc.log");
    for i in 1..=5 {
        // Lines written since the last rotation: the daemon is under load throughout.
        let before = status(&sb, "lrc")["values"]["lines_written"]
            .as_u64()
            .unwrap();
        wait_for("more lines", WAIT, || {
            let now = status(&sb, "lrc")["values"]["lines_written"].as_u64()?;
            (now > before + 50).then_some(())
        });
        logrotate(&sb, &log, "lrc").expect_code(0);
        let rotated = PathBuf::from(format!("{}.1", log.display()));
        assert!(
            rotated.exists(),
            "rotation {i} made no {}",
            rotated.display()
        );
        assert_eq!(
            status(&sb, "lrc")["last_rotate"]["ok"],
            true,
            "rotation {i}"
        );
    }
    // The current file gets lines again after the last reopen.
    wait_for("lines in the new file", WAIT, || {
        (std::fs::metadata(&log).ok()?.len() > 0).then_some(())
    });
    let written = stop_and_count_lines(&sb, daemon, "lrc");
    assert!(written > 250, "only {written} lines");
}

/// Runs `hostile-client ARGS` (as this user: the daemon's own uid, let in for everything).
fn hostile(args: &[&str]) -> String {
    let run = run(Command::new(&bins().hostile).args(args));
    assert_eq!(run.code, Some(0), "{run}");
    run.stdout
}

#[test]
fn c_daemon_survives_garbage_floods_and_bad_arguments_and_loses_no_line() {
    let sb = Sandbox::new();
    let daemon = start(&sb, "hc", "5");
    let socket = daemon.socket.display().to_string();
    let started = Instant::now();

    hostile(&["garbage", &socket, "2"]);
    status(&sb, "hc");
    hostile(&["refused-flood", &socket, "2"]);
    status(&sb, "hc");
    hostile(&["churn", &socket, "2", "80"]);
    hostile(&["forged-names", &socket, "2"]);
    hostile(&["far-deadlines", &socket, "50"]);
    hostile(&["zero-deadlines", &socket, "50"]);
    // Arguments the C handler must never see: the server checks them against the schema,
    // whatever the client (not `ctl`) sends.
    for args in [
        r#"{"rate":0}"#,
        r#"{"rate":1001}"#,
        r#"{"rate":"5"}"#,
        r#"{"rate":1.5}"#,
        r#"{"rate":5,"extra":1}"#,
        r#"{}"#,
        r#"[1,2]"#,
        r#"{"rate":18446744073709551616}"#,
    ] {
        let report = hostile(&["call", &socket, "set-rate", args]);
        assert_eq!(report.trim(), "replied=1", "{args}");
    }
    let doc = sb.ctl(&["--json", "counters", "hc"]).expect_code(0).json();
    let counter = |name: &str| {
        doc["result"]["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no counter {name}: {doc}"))["value"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        counter("ctl.calls.set-rate.ok"),
        0,
        "the handler ran: {doc}"
    );
    let st = status(&sb, "hc");
    assert_eq!(st["values"]["rate"], 5, "a refused call changed the rate");
    assert_eq!(st["pid"], daemon.pid());
    assert!(started.elapsed() < WAIT * 2);
    daemon.assert_alive();
    stop_and_count_lines(&sb, daemon, "hc");
}
