//! `ctl signal`: a daemon without a control socket (a small C program, `c/sigd.c`, built with
//! `cc` once per run) is sent a signal only where it handles it, through a pidfd, and
//! `--verify-reopen` proves the reopen from `/proc/PID/fd`; the real logrotate runs it in
//! `postrotate`.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use tests::{require_root, run, wait_for, Run, Sandbox, NOBODY, WAIT};

/// `sigd`, compiled once per test run into cargo's temporary directory for tests.
pub(crate) fn sigd() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/c/sigd.c");
        let flags = ["-O", "-Wall", "-Werror"].map(OsStr::new);
        tests::compile_c(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            &source,
            "sigd",
            &flags,
            &[],
        )
    })
}

/// A running `sigd`; killed when dropped.
pub(crate) struct Sigd {
    pub(crate) child: Child,
    pub(crate) pid: i32,
    pidfile: PathBuf,
    log: PathBuf,
}

impl Sigd {
    /// Starts `sigd MODE NAME` in `sb` (pid file `NAME.pid`, log `NAME.log` if `with_log`)
    /// and waits for its pid file: its dispositions are set by then.
    fn start(sb: &Sandbox, mode: &str, name: &str, with_log: bool) -> Sigd {
        Sigd::start_at(sb, mode, name, &sb.path(&format!("{name}.pid")), with_log)
    }

    /// [`Sigd::start`], with its pid file at `pidfile` (`ctl doctor`'s tests put it in their
    /// root's `/run`).
    pub(crate) fn start_at(
        sb: &Sandbox,
        mode: &str,
        name: &str,
        pidfile: &Path,
        with_log: bool,
    ) -> Sigd {
        Sigd::start_with(sb, mode, name, pidfile, with_log, None)
    }

    /// [`Sigd::start`] as `uid` (through setpriv), its pid file and log in a directory of that
    /// uid's.
    fn start_as(sb: &Sandbox, uid: u32, mode: &str, name: &str) -> Sigd {
        sb.open_to_other_users();
        let dir = sb.path(&format!("uid-{uid}"));
        std::fs::create_dir_all(&dir).unwrap();
        let owner = Some(rustix::fs::Uid::from_raw(uid));
        rustix::fs::chown(&dir, owner, Some(rustix::fs::Gid::from_raw(uid))).unwrap();
        let pidfile = dir.join(format!("{name}.pid"));
        Sigd::start_with(sb, mode, name, &pidfile, true, Some(uid))
    }

    pub(crate) fn start_with(
        sb: &Sandbox,
        mode: &str,
        name: &str,
        pidfile: &Path,
        with_log: bool,
        uid: Option<u32>,
    ) -> Sigd {
        let pidfile = pidfile.to_owned();
        let log = pidfile.with_extension("log");
        let mut cmd = match uid {
            None => Command::new(sigd()),
            Some(uid) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(sigd());
                cmd
            }
        };
        cmd.args([mode, name]).arg(&pidfile);
        if with_log {
            cmd.arg(&log);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(sb.path(&format!("{name}.stderr"))).unwrap())
            .spawn()
            .expect("spawn sigd");
        let pid = child.id() as i32;
        let mut sigd = Sigd {
            child,
            pid,
            pidfile,
            log,
        };
        wait_for(&format!("sigd {name} to write its pid file"), WAIT, || {
            assert!(
                sigd.alive(),
                "sigd {name} exited before writing its pid file"
            );
            let text = std::fs::read_to_string(&sigd.pidfile).ok()?;
            (text.trim() == pid.to_string()).then_some(())
        });
        if with_log {
            sigd.wait_lines(5);
        }
        sigd
    }

    /// `n` of [`Sigd::start`] of one name, their pid files numbered.
    fn crowd(sb: &Sandbox, mode: &str, name: &str, n: usize) -> Vec<Sigd> {
        let pidfile = |i| sb.path(&format!("{name}-{i}.pid"));
        (0..n)
            .map(|i| Sigd::start_at(sb, mode, name, &pidfile(i), false))
            .collect()
    }

    pub(crate) fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn pidfile(&self) -> &str {
        self.pidfile.to_str().unwrap()
    }

    fn log_path(&self) -> &str {
        self.log.to_str().unwrap()
    }

    /// Waits until the log holds at least `n` lines.
    fn wait_lines(&self, n: usize) {
        wait_for(
            &format!("{n} lines in {}", self.log.display()),
            WAIT,
            || {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                (text.lines().count() >= n).then_some(())
            },
        );
    }

    /// Sends SIGUSR1 and waits for its `usr1` line in the file at the log's path: any SIGHUP
    /// sent before has been handled by then, so the text returned shows it or it never came.
    fn barrier(&self) -> String {
        let count = |t: &str| t.lines().filter(|l| *l == "usr1").count();
        let before = count(&std::fs::read_to_string(&self.log).unwrap_or_default());
        let pid = rustix::process::Pid::from_raw(self.pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::USR1).unwrap();
        wait_for(&format!("pid {} to answer SIGUSR1", self.pid), WAIT, || {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            (count(&text) > before).then_some(text)
        })
    }

    /// The identities of the regular files it has open, from /proc/PID/fd.
    fn open_inodes(&self) -> Vec<u64> {
        let dir = format!("/proc/{}/fd", self.pid);
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| std::fs::metadata(e.unwrap().path()).ok())
            .filter(|m| m.is_file())
            .map(|m| m.ino())
            .collect()
    }
}

impl Drop for Sigd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctl(sb: &Sandbox, args: &[&str]) -> Run {
    sb.ctl(args)
}

#[test]
fn hup_is_not_sent_to_a_daemon_without_a_handler_and_force_kills_it() {
    let sb = Sandbox::new();
    let mut d = Sigd::start(&sb, "none", "sig-none", false);
    let run = ctl(&sb, &["signal", "HUP", "--pidfile", d.pidfile()]).expect_code(1);
    for part in [
        &format!("pid {} (sig-none)", d.pid)[..],
        "SIGHUP would kill it: no handler",
        "--force",
    ] {
        assert!(run.stderr.contains(part), "{part:?}: {run}");
    }
    assert!(d.alive(), "not sent, so still alive");
    // Nothing pending either: it was never sent.
    assert!(!pending(d.pid).contains(&1), "{run}");

    let run = ctl(&sb, &["signal", "--force", "HUP", "--pidfile", d.pidfile()]).expect_code(1);
    assert!(
        run.stderr
            .contains("the signal killed it (sent with --force)"),
        "{run}"
    );
    let status = wait_for("the forced SIGHUP to kill it", WAIT, || {
        d.child.try_wait().unwrap()
    });
    assert_eq!(status.signal(), Some(1), "killed by SIGHUP");
}

/// The signals pending for `pid` (process-wide and its main thread's).
fn pending(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mut mask = 0u64;
    for key in ["SigPnd:", "ShdPnd:"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        mask |= u64::from_str_radix(line[key.len()..].trim(), 16).unwrap();
    }
    (1..=64).filter(|n| mask & (1 << (n - 1)) != 0).collect()
}

#[test]
fn a_daemon_that_reopens_on_hup_is_verified_from_its_descriptors() {
    let sb = Sandbox::new();
    let d = Sigd::start(&sb, "reopen", "sig-reopen", true);
    let old = std::fs::metadata(&d.log).unwrap().ino();
    std::fs::rename(&d.log, sb.path("sig-reopen.log.1")).unwrap();
    let run = ctl(
        &sb,
        &[
            "signal",
            "HUP",
            "--pidfile",
            d.pidfile(),
            "--verify-reopen",
            d.log_path(),
        ],
    )
    .expect_code(0);
    let new = std::fs::metadata(&d.log).unwrap().ino();
    assert_ne!(old, new);
    let line = format!(
        "pid {} (sig-reopen): SIGHUP sent (it has a handler); reopened {} (inode {new}, was {old})",
        d.pid,
        d.log.display()
    );
    assert_eq!(run.stdout.trim_end(), line, "{run}");
    let held = d.open_inodes();
    assert!(
        held.contains(&new) && !held.contains(&old),
        "{held:?} {run}"
    );
}

#[test]
fn a_daemon_that_catches_hup_but_does_not_reopen_fails_verification_naming_the_old_file() {
    let sb = Sandbox::new();
    let mut d = Sigd::start(&sb, "catch", "sig-catch", true);
    let rotated = sb.path("sig-catch.log.1");
    std::fs::rename(&d.log, &rotated).unwrap();
    let started = std::time::Instant::now();
    let run = ctl(
        &sb,
        &[
            "--timeout",
            "1s",
            "signal",
            "HUP",
            "--pidfile",
            d.pidfile(),
            "--verify-reopen",
            d.log_path(),
        ],
    )
    .expect_code(1);
    let took = started.elapsed();
    let part = format!("pid {} still holds open {}", d.pid, rotated.display());
    assert!(
        run.stderr.contains("SIGHUP sent, but after waiting 1s: "),
        "{run}"
    );
    assert!(run.stderr.contains(&part), "{part:?}: {run}");
    assert!(run.stderr.contains("there is no file at"), "{run}");
    // Bounded by --timeout (with room for a loaded machine), not by the harness.
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    let text = std::fs::read_to_string(&rotated).unwrap();
    assert!(text.lines().any(|l| l == "hup"), "it was sent and handled");
    assert!(d.alive());
}

#[test]
fn an_ignored_or_blocked_hup_is_not_sent() {
    let sb = Sandbox::new();
    let mut ignoring = Sigd::start(&sb, "ignore", "sig-ignore", false);
    let run = ctl(&sb, &["signal", "HUP", "--pidfile", ignoring.pidfile()]).expect_code(1);
    assert!(
        run.stderr
            .contains("it ignores SIGHUP: sending it would do nothing"),
        "{run}"
    );
    assert!(ignoring.alive());

    let mut blocking = Sigd::start(&sb, "block", "sig-block", false);
    let doc = ctl(
        &sb,
        &[
            "--json",
            "signal",
            "SIGHUP",
            "--pidfile",
            blocking.pidfile(),
        ],
    )
    .expect_code(1)
    .json();
    assert_eq!(doc["error"]["kind"], "not_sent", "{doc}");
    assert_eq!(
        doc["error"]["detail"]["processes"][0]["refusal"], "blocked",
        "{doc}"
    );
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("it blocks SIGHUP in every thread"),
        "{doc}"
    );
    // A blocked signal that had been sent would show as pending.
    assert!(!pending(blocking.pid).contains(&1));
    assert!(blocking.alive());
}

#[test]
fn a_shell_trap_is_a_handler_and_the_signal_is_sent() {
    let sb = Sandbox::new();
    let pidfile = sb.path("trap.pid");
    let out = sb.path("trap.out");
    let script = format!(
        "trap 'echo hup >> {out}' HUP; echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; \
         while :; do sleep 0.05; done",
        out = out.display(),
        pid = pidfile.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut shell = Sigd {
        pid: child.id() as i32,
        child,
        pidfile,
        log: out.clone(),
    };
    wait_for("the shell's pid file", WAIT, || {
        let text = std::fs::read_to_string(&shell.pidfile).ok()?;
        (text.trim() == shell.pid.to_string()).then_some(())
    });
    let run = ctl(&sb, &["signal", "hup", "--pidfile", shell.pidfile()]).expect_code(0);
    assert!(
        run.stdout
            .contains("SIGHUP sent (it has a handler); not verified"),
        "{run}"
    );
    wait_for("the trap to run", WAIT, || {
        std::fs::read_to_string(&out)
            .ok()?
            .contains("hup")
            .then_some(())
    });
    assert!(shell.alive());
}

#[test]
fn a_pid_file_another_user_could_have_written_is_not_trusted() {
    if !require_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let mut d = Sigd::start(&sb, "catch", "sig-planted", true);
    let refused = |pidfile: &Path, why: &str| {
        let doc = ctl(
            &sb,
            &[
                "--json",
                "signal",
                "HUP",
                "--pidfile",
                pidfile.to_str().unwrap(),
            ],
        )
        .expect_code(77)
        .json();
        assert_eq!(doc["error"]["kind"], "untrusted", "{doc}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{why:?}: {doc}");
        assert!(message.contains("nothing was sent"), "{doc}");
    };

    // Owned by another user.
    std::os::unix::fs::chown(&d.pidfile, Some(NOBODY), Some(NOBODY)).unwrap();
    refused(&d.pidfile, &format!("is owned by uid {NOBODY}"));
    std::os::unix::fs::chown(&d.pidfile, Some(0), Some(0)).unwrap();

    // In a directory anyone may write to, without the sticky bit.
    let open = sb.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let in_open = open.join("d.pid");
    std::fs::copy(&d.pidfile, &in_open).unwrap();
    refused(&in_open, "is writable by its group or others (mode 0777)");

    // A symbolic link to the right pid file.
    let link = sb.path("link.pid");
    std::os::unix::fs::symlink(&d.pidfile, &link).unwrap();
    refused(&link, "is a symbolic link");

    let text = d.barrier();
    assert!(!text.lines().any(|l| l == "hup"), "a SIGHUP was handled");
    assert!(d.alive());
}

#[test]
fn a_stale_pid_file_is_a_daemon_that_died_and_a_missing_one_a_stopped_daemon() {
    let sb = Sandbox::new();
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let pidfile = sb.path("stale.pid");
    std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
    let path = pidfile.to_str().unwrap();
    for args in [
        &["signal", "HUP", "--pidfile", path][..],
        &["--missing-ok", "signal", "HUP", "--pidfile", path],
    ] {
        let run = ctl(&sb, args).expect_code(69);
        assert!(
            run.stderr
                .contains(&format!("names pid {pid}, which is not running")),
            "{run}"
        );
    }
    let doc = ctl(&sb, &["--json", "signal", "HUP", "--pidfile", path])
        .expect_code(69)
        .json();
    assert_eq!(doc["error"]["kind"], "died", "{doc}");

    let missing = sb.path("missing.pid");
    let missing = missing.to_str().unwrap();
    let run = ctl(&sb, &["signal", "HUP", "--pidfile", missing]).expect_code(69);
    assert!(
        run.stderr.contains("--missing-ok makes this exit 0"),
        "{run}"
    );
    let run = ctl(
        &sb,
        &["--missing-ok", "signal", "HUP", "--pidfile", missing],
    )
    .expect_code(0);
    assert!(run.stdout.contains("nothing to do"), "{run}");

    std::fs::write(&pidfile, "12abc\n").unwrap();
    let doc = ctl(&sb, &["--json", "signal", "HUP", "--pidfile", path])
        .expect_code(1)
        .json();
    assert_eq!(doc["error"]["kind"], "bad_pid_file", "{doc}");
}

#[test]
fn a_pid_file_whose_pid_another_process_took_is_told_apart_by_the_name() {
    let sb = Sandbox::new();
    // The daemon died and its pid went to another process, which handles HUP too.
    let other = Sigd::start(&sb, "catch", "sig-other", true);
    let pidfile = sb.path("sig-reused.pid");
    std::fs::write(&pidfile, format!("{}\n", other.pid)).unwrap();
    let path = pidfile.to_str().unwrap();
    // `ctl [BEFORE...] signal HUP --pidfile PATH --name sig-reused`.
    let named = |before: &[&str]| {
        let mut args = before.to_vec();
        args.extend(["signal", "HUP", "--pidfile", path, "--name", "sig-reused"]);
        ctl(&sb, &args)
    };
    for before in [&[][..], &["--missing-ok"]] {
        let run = named(before).expect_code(69);
        assert!(
            run.stderr.contains(&format!(
                "names pid {}, which is now \"sig-other\", not \"sig-reused\": the daemon died",
                other.pid
            )),
            "{run}"
        );
    }
    let doc = named(&["--json"]).expect_code(69).json();
    assert_eq!(doc["error"]["kind"], "died", "{doc}");
    assert!(!other.barrier().lines().any(|l| l == "hup"), "it was sent");
    // A pid nobody has is stale with a name too.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
    let run = named(&[]).expect_code(69);
    assert!(
        run.stderr
            .contains(&format!("names pid {pid}, which is not running")),
        "{run}"
    );
    // The daemon itself, so named (it writes the same pid file): sent and handled.
    let d = Sigd::start(&sb, "catch", "sig-reused", true);
    let run = named(&[]).expect_code(0);
    assert!(
        run.stdout
            .contains(&format!("pid {} (sig-reused): SIGHUP sent", d.pid)),
        "{run}"
    );
    assert!(d.barrier().lines().any(|l| l == "hup"), "{run}");
}

#[test]
fn json_documents_for_a_signal_sent_and_one_refused() {
    let sb = Sandbox::new();
    let d = Sigd::start(&sb, "catch", "sig-json", true);
    let doc = ctl(&sb, &["--json", "signal", "USR1", "--pidfile", d.pidfile()])
        .expect_code(0)
        .json();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["exit_code"], 0, "{doc}");
    assert_eq!(doc["operation"], "signal", "{doc}");
    assert_eq!(doc["target"], d.pidfile(), "{doc}");
    let result = &doc["result"];
    assert_eq!(result["signal"], "SIGUSR1", "{doc}");
    assert_eq!(result["number"], 10, "{doc}");
    assert_eq!(result["verified"], false, "{doc}");
    assert_eq!(result["processes"][0]["pid"], d.pid, "{doc}");
    assert_eq!(result["processes"][0]["name"], "sig-json", "{doc}");
    assert_eq!(result["processes"][0]["handled"], "handler", "{doc}");

    let doc = ctl(&sb, &["--json", "signal", "TERM", "--pidfile", d.pidfile()])
        .expect_code(1)
        .json();
    assert_eq!(doc["ok"], false, "{doc}");
    assert_eq!(doc["exit_code"], 1, "{doc}");
    assert_eq!(doc["error"]["kind"], "not_sent", "{doc}");
    let refused = &doc["error"]["detail"]["processes"][0];
    assert_eq!(refused["pid"], d.pid, "{doc}");
    assert_eq!(refused["refusal"], "would_kill", "{doc}");
    assert!(doc.get("result").is_none(), "{doc}");
}

#[test]
fn a_name_matches_every_process_of_that_exact_name_and_one_that_would_die_stops_them_all() {
    let sb = Sandbox::new();
    let a = Sigd::start(&sb, "catch", "sig-multi", true);
    // The same name again, with a pid file and log of its own.
    let b_sb = Sandbox::new();
    let b = Sigd::start(&b_sb, "catch", "sig-multi", true);
    let longer = Sigd::start(&sb, "catch", "sig-multi-x", true);
    let none_sb = Sandbox::new();
    let mut dies = Sigd::start(&none_sb, "none", "sig-multi", false);

    let run = ctl(&sb, &["signal", "HUP", "--name", "sig-multi"]).expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "pid {} (sig-multi): SIGHUP would kill it: no handler",
            dies.pid
        )),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("1 of the 3 processes; none was signalled"),
        "{run}"
    );
    for d in [&a, &b, &longer] {
        assert!(
            !d.barrier().lines().any(|l| l == "hup"),
            "pid {} got it: {run}",
            d.pid
        );
    }
    assert!(dies.alive());
    drop(dies);

    let run = ctl(&sb, &["signal", "HUP", "--name", "sig-multi"]).expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per process: {run}");
    for d in [&a, &b] {
        assert!(
            run.stdout
                .contains(&format!("pid {} (sig-multi): SIGHUP sent", d.pid)),
            "{run}"
        );
        assert!(
            d.barrier().lines().any(|l| l == "hup"),
            "pid {}: {run}",
            d.pid
        );
    }
    assert!(
        !longer.barrier().lines().any(|l| l == "hup"),
        "not an exact match"
    );

    let doc = ctl(&sb, &["--json", "signal", "HUP", "--name", "sig-nobody"])
        .expect_code(69)
        .json();
    assert_eq!(doc["error"]["kind"], "no_process", "{doc}");
    ctl(
        &sb,
        &["--missing-ok", "signal", "HUP", "--name", "sig-nobody"],
    )
    .expect_code(0);
    let run = ctl(&sb, &["signal", "HUP", "--name", "sig-multi-but-longer"]).expect_code(2);
    assert!(run.stderr.contains("\"sig-multi-but-l\""), "{run}");
}

#[test]
fn a_login_users_process_of_that_name_is_left_out_and_cannot_stand_in_for_a_dead_daemon() {
    if !require_root() {
        return;
    }
    // A person (uid 4242: between UID_MIN and UID_MAX) runs a process under the daemon's name.
    let sb = Sandbox::new();
    let theirs = Sigd::start_as(&sb, 4242, "catch", "sig-people");
    // The daemon died: their process, which handles HUP, must not make it look green.
    let run = ctl(&sb, &["signal", "HUP", "--name", "sig-people"]).expect_code(69);
    assert!(
        run.stderr.contains(&format!(
            "no process named \"sig-people\" (as /proc/PID/comm has it) but login users' \
             (pid {} of uid 4242), which --name never signals",
            theirs.pid
        )),
        "{run}"
    );
    assert!(!theirs.barrier().lines().any(|l| l == "hup"), "{run}");
    // Nor can a process of theirs without a handler refuse for the daemon.
    drop(theirs);
    let _theirs = Sigd::start_as(&sb, 4242, "none", "sig-people");
    let daemon = Sigd::start(&sb, "catch", "sig-people", true);
    let run = ctl(&sb, &["signal", "HUP", "--name", "sig-people"]).expect_code(0);
    assert_eq!(run.stdout.lines().count(), 1, "{run}");
    assert!(
        run.stdout
            .contains(&format!("pid {} (sig-people): SIGHUP sent", daemon.pid)),
        "{run}"
    );
    assert!(daemon.barrier().lines().any(|l| l == "hup"), "{run}");
}

#[test]
fn a_stopped_daemon_is_not_signalled_since_it_would_answer_nothing_until_continued() {
    use rustix::process::{kill_process, Pid, Signal};
    let sb = Sandbox::new();
    let d = Sigd::start(&sb, "catch", "sig-stopped", true);
    let pid = Pid::from_raw(d.pid).unwrap();
    kill_process(pid, Signal::STOP).unwrap();
    wait_for("sigd to stop", WAIT, || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid)).ok()?;
        status.contains("State:\tT").then_some(())
    });
    let doc = ctl(&sb, &["--json", "signal", "HUP", "--pidfile", d.pidfile()])
        .expect_code(1)
        .json();
    assert_eq!(
        doc["error"]["detail"]["processes"][0]["refusal"], "stopped",
        "{doc}"
    );
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("it is stopped"), "{doc}");
    assert!(
        pending(d.pid).is_empty(),
        "sent to a stopped process: {doc}"
    );
    kill_process(pid, Signal::CONT).unwrap();
    assert!(!d.barrier().lines().any(|l| l == "hup"), "{doc}");
    ctl(&sb, &["signal", "HUP", "--pidfile", d.pidfile()]).expect_code(0);
    assert!(d.barrier().lines().any(|l| l == "hup"));
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    for args in [
        &["signal", "HUP"][..],
        &["signal", "BOGUS", "--pidfile", "/run/x.pid"],
        &["signal", "0", "--pidfile", "/run/x.pid"],
        &[
            "signal",
            "HUP",
            "--pidfile",
            "/run/x.pid",
            "--name",
            "longer-than-fifteen",
        ],
        &[
            "signal",
            "HUP",
            "--pidfile",
            "/run/x.pid",
            "--verify-reopen",
        ],
    ] {
        ctl(&sb, args).expect_code(2);
    }
}

// The real logrotate, with `ctl signal` in postrotate.

fn logrotate(sb: &Sandbox, conf: &str) -> Run {
    let conf_path = sb.path("logrotate.conf");
    std::fs::write(&conf_path, conf).unwrap();
    run(Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(sb.path("logrotate.state"))
        .arg(&conf_path))
}

fn stanza(log: &str, postrotate: &str) -> String {
    format!(
        "{log} {{\n    rotate 50\n    missingok\n    nocompress\n    create 0644\n    postrotate\n        {postrotate}\n    endscript\n}}\n"
    )
}

fn signal_line(d: &Sigd) -> String {
    format!(
        "{} --timeout 10s signal HUP --pidfile {} --verify-reopen {}",
        tests::bins().ctl.display(),
        d.pidfile(),
        d.log_path()
    )
}

#[test]
fn logrotate_with_ctl_signal_fails_and_does_not_kill_a_daemon_without_a_handler() {
    assert!(
        Path::new("/usr/sbin/logrotate").exists(),
        "logrotate is not installed: apt-get install -y logrotate"
    );
    let sb = Sandbox::new();
    let mut d = Sigd::start(&sb, "none", "sig-lr-none", true);
    let run = logrotate(&sb, &stanza(d.log_path(), &signal_line(&d)));
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains(&format!(
            "pid {} (sig-lr-none): SIGHUP would kill it: no handler",
            d.pid
        )),
        "{run}"
    );
    assert!(d.alive(), "{run}");
}

#[test]
fn logrotate_with_ctl_signal_loses_and_duplicates_no_line_under_load() {
    assert!(
        Path::new("/usr/sbin/logrotate").exists(),
        "logrotate is not installed: apt-get install -y logrotate"
    );
    const ROTATIONS: usize = 5;
    let sb = Sandbox::new();
    let mut d = Sigd::start(&sb, "reopen", "sig-lr", true);
    let conf = stanza(d.log_path(), &signal_line(&d));
    for round in 1..=ROTATIONS {
        d.wait_lines(50);
        let run = logrotate(&sb, &conf).expect_code(0);
        assert!(run.stderr.is_empty(), "rotation {round}: {run}");
    }
    d.wait_lines(50);
    let _ = d.child.kill();
    let _ = d.child.wait();
    // Oldest first: logrotate shifted the first rotated file to LOG.5.
    let mut files: Vec<PathBuf> = (1..=ROTATIONS)
        .rev()
        .map(|n| sb.path(&format!("sig-lr.log.{n}")))
        .collect();
    files.push(d.log.clone());
    let mut numbers = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<u64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("line "))
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("torn line {n:?} in {}", file.display()))
            })
            .collect();
        assert!(!lines.is_empty(), "{} has no line", file.display());
        numbers.extend(lines);
    }
    assert_eq!(numbers[0], 1, "the first line is missing");
    for pair in numbers.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "line {} followed by {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn another_users_process_is_neither_read_nor_signalled_and_that_is_denied() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let mut d = Sigd::start(&sb, "catch", "sig-denied", true);
    // As nobody: root's process's descriptors cannot be read, nor can it be signalled.
    let doc = sb
        .ctl_as_nobody(&[
            "--json",
            "signal",
            "HUP",
            "--name",
            "sig-denied",
            "--verify-reopen",
            d.log_path(),
        ])
        .expect_code(77)
        .json();
    assert_eq!(doc["error"]["kind"], "denied", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("read the open descriptors (/proc/PID/fd) of pid")
            && message.contains("nothing was sent"),
        "{doc}"
    );
    let run = sb
        .ctl_as_nobody(&["signal", "HUP", "--name", "sig-denied"])
        .expect_code(77);
    assert!(
        run.stderr.contains(&format!(
            "permission denied to signal pid {} (sig-denied)",
            d.pid
        )),
        "{run}"
    );
    assert!(!d.barrier().lines().any(|l| l == "hup"), "{run}");
    assert!(d.alive());
}

#[test]
fn a_crowd_of_one_name_is_refused_past_the_deadline_and_past_the_cap_and_nothing_is_sent() {
    let sb = Sandbox::new();
    // 30 processes that block HUP, each looked at for 100 ms: more than a 1 s --timeout.
    let crowd = Sigd::crowd(&sb, "block", "sig-crowd", 30);
    let args = [
        "--json",
        "--timeout",
        "1s",
        "signal",
        "HUP",
        "--name",
        "sig-crowd",
    ];
    let doc = ctl(&sb, &args).expect_code(75).json();
    assert_eq!(doc["error"]["kind"], "timeout", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("judging the 30 processes named \"sig-crowd\" took longer than --timeout"),
        "{doc}"
    );
    for d in &crowd {
        assert!(
            !pending(d.pid).contains(&1),
            "HUP was sent to {}: {doc}",
            d.pid
        );
    }
    drop(crowd);

    // More than 1024 of one name (without a handler for HUP, which would kill them).
    struct Crowd(Vec<Child>);
    impl Drop for Crowd {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
            }
            for child in &mut self.0 {
                let _ = child.wait();
            }
        }
    }
    let mut many = Crowd(Vec::new());
    for i in 0..1025 {
        let child = Command::new(sigd())
            .args(["none", "sig-many"])
            .arg(sb.path(&format!("m{i}.pid")))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sigd");
        many.0.push(child);
    }
    wait_for("1025 processes named sig-many", WAIT, || {
        let named = many
            .0
            .iter()
            .filter(|c| {
                std::fs::read_to_string(format!("/proc/{}/comm", c.id()))
                    .is_ok_and(|comm| comm == "sig-many\n")
            })
            .count();
        (named == 1025).then_some(())
    });
    let doc = ctl(&sb, &["--json", "signal", "HUP", "--name", "sig-many"])
        .expect_code(1)
        .json();
    assert_eq!(doc["error"]["kind"], "too_many", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1025 processes are named \"sig-many\", more than the 1024"),
        "{doc}"
    );
    for child in &mut many.0 {
        assert!(child.try_wait().unwrap().is_none(), "HUP was sent: {doc}");
    }
}

#[test]
fn a_refusal_names_eight_processes_and_counts_the_rest_and_json_lists_them_all() {
    let sb = Sandbox::new();
    let crowd = Sigd::crowd(&sb, "none", "sig-ten", 10);
    let run = ctl(&sb, &["signal", "HUP", "--name", "sig-ten"]).expect_code(1);
    assert_eq!(
        run.stderr
            .matches("(sig-ten): SIGHUP would kill it")
            .count(),
        8,
        "{run}"
    );
    assert!(
        run.stderr
            .contains("; and 2 more (all 10 processes; none was signalled)"),
        "{run}"
    );
    let doc = ctl(&sb, &["--json", "signal", "HUP", "--name", "sig-ten"])
        .expect_code(1)
        .json();
    assert_eq!(
        doc["error"]["detail"]["processes"]
            .as_array()
            .unwrap()
            .len(),
        10,
        "{doc}"
    );
    drop(crowd);
}
