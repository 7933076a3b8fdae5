//! Under a real systemd: the demo as a `Type=notify` unit of systemd 252 (the distribution's
//! `/lib/systemd/systemd`) running as PID 1 of private PID, mount, cgroup and UTS namespaces,
//! with a private `/run` and a cgroup of its own. The datagram tests in `lifecycle` check what
//! the daemon sends; these check what systemd makes of it, and that the shipped unit
//! (`contrib/demo-daemon.service`, hardened) runs as it is, with its sysusers.d entry and
//! example configuration.

use crate::config;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tests::{bins, run, wait_for, Run, Sandbox, WAIT};

const SYSTEMD: &str = "/lib/systemd/systemd";
const TARGET: &str = "ctl-test.target";

/// Sets up the namespace (the mounts of a container) and becomes systemd. Arguments: the
/// directory holding the units, then `SOURCE=TARGET` directories to bind at TARGET (under
/// /run). Nothing a unit writes to /etc (an overlay: systemd-sysusers adds users there) or
/// /var/log (a tmpfs) reaches the host.
const INIT: &str = r#"#!/bin/sh
set -e
# Nothing mounted here reaches the host.
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system
cp -R "$1"/. /run/systemd/system/
shift
mount -t tmpfs -o mode=0755 tmpfs /var/log
mkdir -p /run/ctl-test-etc/upper /run/ctl-test-etc/work
mount -t overlay overlay \
    -o lowerdir=/etc,upperdir=/run/ctl-test-etc/upper,workdir=/run/ctl-test-etc/work /etc
for bind in "$@"; do
    mkdir -p "${bind#*=}"
    mount --bind "${bind%%=*}" "${bind#*=}"
done
# A cgroup2 hierarchy whose root is the cgroup made for this test (the cgroup namespace).
if mountpoint -q /sys/fs/cgroup; then umount -l /sys/fs/cgroup; fi
mount -t cgroup2 cgroup2 /sys/fs/cgroup
exec env -i container=ctl-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit=ctl-test.target
"#;

/// A systemd running as PID 1 of namespaces of its own; killed (with everything it runs) and
/// its cgroup removed when dropped.
struct Systemd {
    /// `unshare`, whose only child is systemd.
    outer: Child,
    /// systemd's pid as this test sees it (1 in its namespace).
    pid: u32,
    /// The cgroup made for it.
    cgroup: PathBuf,
    /// What the namespace's set-up wrote, before it became systemd.
    log: PathBuf,
}

/// Skips the test with `reason`, except under CI (`CI` set), where a real systemd runs (CI is
/// this kind of machine, as root) and a skip would hide the one test that can tell.
#[track_caller]
fn cannot_run(reason: String) -> Option<Systemd> {
    let at = std::panic::Location::caller();
    assert!(
        std::env::var_os("CI").is_none(),
        "{at}: cannot run systemd here, and CI must: {reason}"
    );
    eprintln!("skipped ({at}): cannot run systemd here: {reason}");
    None
}

/// Where this process's cgroup is in the cgroup2 hierarchy: `<mount point><path>`.
fn own_cgroup2() -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    // "ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS... - FSTYPE SOURCE SUPER_OPTIONS"
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2")
                .then(|| left.split(' ').nth(4).map(str::to_owned))?
        })
        .ok_or("no cgroup2 hierarchy is mounted")?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let path = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process has no cgroup2 cgroup")?;
    Ok(Path::new(&mount).join(path.trim_start_matches('/')))
}

fn is_executable(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Systemd {
    /// Starts systemd with the units in `units` (copied to its `/run/systemd/system`) and waits
    /// until it has reached its target. `None` (the test is skipped) when it cannot run here.
    fn start(sb: &Sandbox, units: &Path) -> Option<Systemd> {
        Systemd::start_with(sb, units, &[])
    }

    /// [`Systemd::start`], with each directory `(source, target)` of `binds` bound at `target`
    /// in systemd's namespace.
    fn start_with(sb: &Sandbox, units: &Path, binds: &[(&Path, &str)]) -> Option<Systemd> {
        if !tests::is_root() {
            return cannot_run("it needs root".into());
        }
        for program in [SYSTEMD, "unshare", "nsenter", "mountpoint"] {
            if !is_executable(program) {
                return cannot_run(format!("no working {program}"));
            }
        }
        let parent = match own_cgroup2() {
            Ok(parent) => parent,
            Err(reason) => return cannot_run(reason),
        };
        let cgroup = parent.join(format!(
            "ctl-test-systemd-{}-{}",
            std::process::id(),
            sb.dir.path().file_name().unwrap().to_string_lossy()
        ));
        if let Err(err) = std::fs::create_dir(&cgroup) {
            return cannot_run(format!(
                "cannot make the cgroup {}: {err}",
                cgroup.display()
            ));
        }
        let init = sb.path("systemd-init.sh");
        std::fs::write(&init, INIT).unwrap();
        let log = sb.path("systemd.stderr");
        // The shell moves itself into the new cgroup, so that `unshare --cgroup` makes that the
        // namespace's root; `--kill-child`: if unshare dies, so does systemd.
        let outer = Command::new("sh")
            .arg("-c")
            .arg(
                "cgroup=$1; shift; echo $$ > \"$cgroup/cgroup.procs\" && exec unshare --pid \
                 --fork --mount --cgroup --uts --mount-proc --kill-child /bin/sh \"$@\"",
            )
            .arg("sh")
            .arg(&cgroup)
            .arg(&init)
            .arg(units)
            .args(
                binds
                    .iter()
                    .map(|(source, target)| format!("{}={target}", source.display())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn unshare");
        let mut systemd = Systemd {
            pid: 0,
            outer,
            cgroup,
            log,
        };
        // systemd is unshare's child once the init script has exec'd it.
        let found = wait_for_or_exit(&mut systemd, "systemd to start", |sd| {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", sd.outer.id()))
                    .ok()?;
            let pid: u32 = children.split_whitespace().next()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "systemd").then_some(pid)
        });
        match found {
            Ok(pid) => systemd.pid = pid,
            Err(reason) => return cannot_run(reason),
        }
        let running = wait_for_or_exit(&mut systemd, "systemd to reach its target", |sd| {
            let state = sd.systemctl(&["is-system-running"]);
            let state = state.stdout.trim();
            matches!(state, "running" | "degraded").then_some(())
        });
        if let Err(reason) = running {
            return cannot_run(reason);
        }
        Some(systemd)
    }

    /// Runs `systemctl ARGS` inside systemd's namespaces.
    fn systemctl(&self, args: &[&str]) -> Run {
        let mut all = vec!["--no-pager"];
        all.extend_from_slice(args);
        self.inside("systemctl", &all)
    }

    /// Runs `PROGRAM ARGS` inside systemd's namespaces (its /run, /etc and /var/log), as root,
    /// with no setting of ctl's from the test's environment.
    fn inside(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Run {
        run(Command::new("nsenter")
            .arg(format!("--target={}", self.pid))
            .args(["--mount", "--pid", "--"])
            .arg(program)
            .args(args)
            .env_remove("CTL_SOCKET_DIR")
            .env_remove("CTL_RUN_DIR"))
    }

    /// One property of `unit`, e.g. `ActiveState`.
    fn property(&self, unit: &str, name: &str) -> String {
        let out = self
            .systemctl(&["show", "--value", "-p", name, unit])
            .expect_code(0);
        out.stdout.trim().to_owned()
    }

    /// The pid in this test's namespace of the process `unit` knows as `ns_pid` (a pid in
    /// systemd's namespace, such as `MainPID`), found among the unit's cgroup's processes.
    fn host_pid(&self, unit: &str, ns_pid: &str) -> String {
        let procs = self
            .cgroup
            .join("system.slice")
            .join(unit)
            .join("cgroup.procs");
        let procs =
            std::fs::read_to_string(&procs).unwrap_or_else(|e| panic!("{}: {e}", procs.display()));
        procs
            .lines()
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("NSpid:"))
                        .and_then(|ids| ids.split_whitespace().last())
                        == Some(ns_pid)
                })
            })
            .unwrap_or_else(|| panic!("no process {ns_pid} of {unit} among {procs:?}"))
            .to_owned()
    }

    /// `systemctl status UNIT`, for failure messages. (There is no journal: systemd runs
    /// nothing but the test's units.)
    fn explain(&self, unit: &str) -> String {
        self.systemctl(&["status", unit]).to_string()
    }
}

/// Like [`wait_for`] but ends early when systemd (or the namespace around it) has gone, and
/// returns why instead of panicking: the caller decides whether that is a skip.
fn wait_for_or_exit<T>(
    sd: &mut Systemd,
    what: &str,
    mut check: impl FnMut(&Systemd) -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = check(sd) {
            return Ok(v);
        }
        if let Ok(Some(status)) = sd.outer.try_wait() {
            return Err(format!(
                "waiting for {what}, it exited ({status}); its stderr:\n{}",
                std::fs::read_to_string(&sd.log).unwrap_or_default()
            ));
        }
        if start.elapsed() > WAIT {
            return Err(format!(
                "timed out after {WAIT:?} waiting for {what}; its stderr:\n{}",
                std::fs::read_to_string(&sd.log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        // Killing PID 1 of a PID namespace kills everything in it.
        if self.pid != 0 {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.outer.kill();
        let _ = self.outer.wait();
        // The cgroups systemd made under ours, deepest first, once their processes are gone.
        let start = Instant::now();
        while self.cgroup.exists() && start.elapsed() < WAIT {
            remove_cgroup_tree(&self.cgroup);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Writes the test's target and a `Type=notify` unit running the demo (socket `socket`, config
/// `config`) with a stop timeout of 2 s, and returns the directory holding them.
fn write_units(sb: &Sandbox, unit: &str, config: &Path, socket: &Path) -> PathBuf {
    let dir = sb.path("units");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join(TARGET),
        "[Unit]\nDescription=ctl test target\nDefaultDependencies=no\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(unit),
        format!(
            "[Unit]\n\
             Description=demo-daemon under a real systemd\n\
             DefaultDependencies=no\n\
             \n\
             [Service]\n\
             Type=notify\n\
             ExecStart={demo} --name sdx --config {config} --socket {socket}\n\
             Environment=RUST_LOG=info\n\
             StandardOutput=append:{stdout}\n\
             StandardError=append:{stderr}\n\
             TimeoutStartSec=60\n\
             TimeoutStopSec=2\n",
            demo = bins().demo.display(),
            config = config.display(),
            socket = socket.display(),
            stdout = sb.path("sdx.stdout").display(),
            stderr = sb.path("sdx.stderr").display(),
        ),
    )
    .unwrap();
    dir
}

#[test]
fn a_drain_under_a_real_systemd_leaves_the_unit_running_and_resume_serves_again() {
    const UNIT: &str = "ctl-test-demo.service";
    const TIMEOUT_STOP: Duration = Duration::from_secs(2);
    let sb = Sandbox::new();
    let log = sb.path("sdx.log");
    let cfg = sb.write_config("sdx.toml", &config(&log, 20, "alpha"));
    std::fs::create_dir(sb.socket_dir()).unwrap();
    let socket = sb.socket_dir().join("sdx.sock");
    let units = write_units(&sb, UNIT, &cfg, &socket);
    let Some(sd) = Systemd::start(&sb, &units) else {
        return;
    };
    let target = socket.to_str().unwrap();

    // Type=notify: returns once the daemon said READY=1.
    let started = sd.systemctl(&["start", UNIT]);
    assert_eq!(started.code, Some(0), "{started}\n{}", sd.explain(UNIT));
    let main_pid = sd.property(UNIT, "MainPID");
    assert_ne!(main_pid, "0", "{}", sd.explain(UNIT));
    let running = |sd: &Systemd| {
        (
            sd.property(UNIT, "ActiveState"),
            sd.property(UNIT, "SubState"),
            sd.property(UNIT, "MainPID"),
        )
    };
    let serving = ("active".to_owned(), "running".to_owned(), main_pid.clone());
    assert_eq!(running(&sd), serving, "{}", sd.explain(UNIT));

    sb.ctl(&["drain", target]).expect_code(0);
    // systemd handles notifications in order: once the drain's status line shows, whatever
    // the drain sent has been taken in. A unit leaving `active` ends the wait too (the daemon
    // said STOPPING=1, or something else stopped it).
    wait_for("systemd to take in the drain", WAIT, || {
        let status = sd.property(UNIT, "StatusText");
        (status.starts_with("drain") || sd.property(UNIT, "ActiveState") != "active").then_some(())
    });
    // Had the drain said STOPPING=1, the unit would be `deactivating` now and SIGKILLed once
    // TimeoutStopSec passed. Nothing announces that this did not happen, so watch the unit for
    // that long and more, failing at the first sight of it leaving `running`.
    let watched = Instant::now();
    while watched.elapsed() < TIMEOUT_STOP * 2 + Duration::from_secs(1) {
        assert_eq!(
            running(&sd),
            serving,
            "the drain stopped the unit: {}",
            sd.explain(UNIT)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = sb.ctl(&["--json", "status", target]).expect_code(0).json();
    assert_eq!(status["result"]["draining"], true, "{status}");
    assert_eq!(
        status["result"]["pid"].to_string(),
        main_pid,
        "the same daemon: {status}"
    );

    sb.ctl(&["resume", target]).expect_code(0);
    wait_for("systemd to show the resume", WAIT, || {
        sd.property(UNIT, "StatusText")
            .starts_with("serving again")
            .then_some(())
    });
    assert_eq!(running(&sd), serving, "{}", sd.explain(UNIT));
    let status = sb.ctl(&["--json", "status", target]).expect_code(0).json();
    assert_eq!(status["result"]["draining"], false, "{status}");

    // A real stop: SIGTERM, STOPPING=1, a clean exit well within TimeoutStopSec.
    let stopped = sd.systemctl(&["stop", UNIT]);
    assert_eq!(stopped.code, Some(0), "{stopped}\n{}", sd.explain(UNIT));
    assert_eq!(
        sd.property(UNIT, "ActiveState"),
        "inactive",
        "{}",
        sd.explain(UNIT)
    );
    assert_eq!(
        sd.property(UNIT, "Result"),
        "success",
        "{}",
        sd.explain(UNIT)
    );
}

/// The shipped unit, as an operator installs it: only where this build's binaries and the
/// example config are differs (bound into systemd's namespace under /run/ctl-test, since the
/// unit's ProtectHome= and PrivateTmp= hide where tests keep them); a drop-in sends its output
/// to files the test reads.
fn shipped_unit(sb: &Sandbox, unit: &str) -> PathBuf {
    let dir = sb.path("units");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join(TARGET),
        "[Unit]\nDescription=ctl test target\nDefaultDependencies=no\n",
    )
    .unwrap();
    let shipped = std::fs::read_to_string(repo().join("contrib/demo-daemon.service")).unwrap();
    for path in [
        "/usr/local/bin/demo-daemon",
        "/usr/bin/ctl",
        "/etc/demo-daemon/demo.toml",
    ] {
        assert!(shipped.contains(path), "the shipped unit names {path}");
    }
    let text = shipped
        .replace(
            "/usr/local/bin/demo-daemon",
            "/run/ctl-test/bin/demo-daemon",
        )
        .replace("/usr/bin/ctl", "/run/ctl-test/bin/ctl")
        .replace(
            "/etc/demo-daemon/demo.toml",
            "/run/ctl-test/files/demo.toml",
        );
    std::fs::write(dir.join(unit), text).unwrap();
    let dropin = dir.join(format!("{unit}.d"));
    std::fs::create_dir(&dropin).unwrap();
    std::fs::write(
        dropin.join("test.conf"),
        format!(
            "[Unit]\nDefaultDependencies=no\n\n[Service]\nEnvironment=RUST_LOG=info\n\
             StandardOutput=append:{}\nStandardError=append:{}\n",
            sb.path("unit.stdout").display(),
            sb.path("unit.stderr").display(),
        ),
    )
    .unwrap();
    dir
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The shipped example config, with lines every 20 ms and `message`.
fn shipped_config(message: &str, interval_ms: u64) -> String {
    let text = std::fs::read_to_string(repo().join("contrib/demo-daemon.toml")).unwrap();
    assert!(text.contains("interval_ms = 1000\n") && text.contains("message = \"hello\"\n"));
    text.replace(
        "interval_ms = 1000\n",
        &format!("interval_ms = {interval_ms}\n"),
    )
    .replace("message = \"hello\"\n", &format!("message = {message:?}\n"))
}

#[test]
fn the_shipped_hardened_unit_runs_under_a_real_systemd_reloads_rotates_and_stops() {
    use std::os::unix::fs::PermissionsExt;
    const UNIT: &str = "demo-daemon.service";
    let sb = Sandbox::new();
    // What the unit reads, readable by its user, demo: the sysusers.d entry and the config.
    let files = sb.path("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(
        repo().join("contrib/demo-daemon.sysusers"),
        files.join("demo-daemon.sysusers"),
    )
    .unwrap();
    let config = files.join("demo.toml");
    std::fs::write(&config, shipped_config("first", 20)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bin = bins().demo.parent().unwrap().to_owned();
    assert_eq!(
        bins().ctl.parent(),
        Some(bin.as_path()),
        "ctl beside demo-daemon"
    );
    let units = shipped_unit(&sb, UNIT);
    let Some(sd) = Systemd::start_with(
        &sb,
        &units,
        &[(&bin, "/run/ctl-test/bin"), (&files, "/run/ctl-test/files")],
    ) else {
        return;
    };
    let explain = |sd: &Systemd| {
        format!(
            "{}\nthe unit's stderr:\n{}",
            sd.explain(UNIT),
            std::fs::read_to_string(sb.path("unit.stderr")).unwrap_or_default()
        )
    };
    // The user, from the shipped sysusers.d entry.
    sd.inside(
        "systemd-sysusers",
        &["/run/ctl-test/files/demo-daemon.sysusers"],
    )
    .expect_code(0);
    let demo = sd.inside("id", &["-u", "demo"]).expect_code(0);
    let demo_uid = demo.stdout.trim().to_owned();
    let ctl = |args: &[&str]| sd.inside(&bins().ctl, args);

    let started = sd.systemctl(&["start", UNIT]);
    assert_eq!(started.code, Some(0), "{started}\n{}", explain(&sd));
    let main_pid = sd.property(UNIT, "MainPID");
    let host_pid = sd.host_pid(UNIT, &main_pid);
    // Hardened, as the unit says: no capabilities, no new privileges, a seccomp filter, its
    // own user.
    let proc_status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).unwrap();
    for line in ["NoNewPrivs:\t1", "Seccomp:\t2", "CapEff:\t0000000000000000"] {
        assert!(proc_status.contains(line), "{line}: {proc_status}");
    }
    let uid_line = proc_status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(demo_uid.as_str()),
        "runs as demo ({demo_uid}): {uid_line}"
    );

    // Root's ctl finds it by name, at /run/demo/ctl.sock.
    let status = ctl(&["--json", "status", "demo"]).expect_code(0).json();
    assert_eq!(status["socket"], "/run/demo/ctl.sock", "{status}");
    assert_eq!(status["result"]["pid"].to_string(), main_pid, "{status}");
    assert_eq!(status["result"]["values"]["message"], "first", "{status}");

    // systemctl reload: ExecReload's ctl, running as demo, reloads.
    std::fs::write(&config, shipped_config("second", 20)).unwrap();
    let reloaded = sd.systemctl(&["reload", UNIT]);
    assert_eq!(reloaded.code, Some(0), "{reloaded}\n{}", explain(&sd));
    let status = ctl(&["--json", "status", "demo"]).expect_code(0).json();
    assert_eq!(status["result"]["config_generation"], 2, "{status}");
    assert_eq!(status["result"]["values"]["message"], "second", "{status}");
    // A refused configuration fails `systemctl reload`, the reason (with its line) in the
    // unit's output, and the old one stays.
    std::fs::write(&config, shipped_config("third", 0)).unwrap();
    let refused = sd.systemctl(&["reload", UNIT]);
    assert_ne!(refused.code, Some(0), "{refused}\n{}", explain(&sd));
    let stderr = std::fs::read_to_string(sb.path("unit.stderr")).unwrap_or_default();
    assert!(
        stderr.contains("demo.toml: line ") && stderr.contains("interval_ms: must be between"),
        "{stderr}"
    );
    let status = ctl(&["--json", "status", "demo"]).expect_code(0).json();
    assert_eq!(status["result"]["config_generation"], 2, "{status}");
    assert_eq!(
        sd.property(UNIT, "ActiveState"),
        "active",
        "{}",
        explain(&sd)
    );
    std::fs::write(&config, shipped_config("second", 20)).unwrap();

    // Rotate, as logrotate does: rename in /var/log/demo, then root's `ctl rotate demo`.
    let log = format!("/proc/{host_pid}/root/var/log/demo/demo.log");
    let log = Path::new(&log);
    wait_for("a line in /var/log/demo/demo.log", WAIT, || {
        std::fs::read_to_string(log)
            .is_ok_and(|t| t.contains("seq="))
            .then_some(())
    });
    std::fs::rename(log, log.with_extension("log.1")).unwrap();
    let rotated = ctl(&["--json", "rotate", "demo"]).expect_code(0).json();
    let file = &rotated["result"]["files"][0];
    assert_eq!(file["path"], "/var/log/demo/demo.log", "{rotated}");
    assert_ne!(file["old"], file["new"], "{rotated}");
    wait_for("a line in the new log file", WAIT, || {
        std::fs::read_to_string(log)
            .is_ok_and(|t| t.contains("seq="))
            .then_some(())
    });

    // Stop: ExecStop's drain (as demo), then SIGTERM; a clean exit.
    let stopped = sd.systemctl(&["stop", UNIT]);
    assert_eq!(stopped.code, Some(0), "{stopped}\n{}", explain(&sd));
    assert_eq!(
        sd.property(UNIT, "ActiveState"),
        "inactive",
        "{}",
        explain(&sd)
    );
    assert_eq!(sd.property(UNIT, "Result"), "success", "{}", explain(&sd));
    let stderr = std::fs::read_to_string(sb.path("unit.stderr")).unwrap_or_default();
    assert!(stderr.contains("drain"), "ExecStop drained: {stderr}");
}

/// `systemd-analyze security` rates the shipped unit's exposure (0 safest, 10 least safe):
/// 9.2 "UNSAFE" before its hardening, 0.2 "SAFE" with it (systemd 252).
const MOST_EXPOSURE: f64 = 1.0;

#[test]
fn systemd_analyze_rates_the_shipped_unit_safe() {
    if !is_executable("systemd-analyze") {
        assert!(
            std::env::var_os("CI").is_none(),
            "no systemd-analyze here, and CI must run this test"
        );
        eprintln!("skipped: no systemd-analyze");
        return;
    }
    let unit = repo().join("contrib/demo-daemon.service");
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit));
    let exposure: f64 = out
        .stdout
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for demo-daemon.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {out}"));
    assert!(
        exposure <= MOST_EXPOSURE,
        "exposure {exposure}, more than {MOST_EXPOSURE}: {out}"
    );
}
