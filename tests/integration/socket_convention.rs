//! The socket convention without `CTL_SOCKET_DIR`: a daemon running as its own user, in the
//! runtime directory systemd's `RuntimeDirectory=NAME` gives it, is found by root's `ctl`; a
//! socket in a directory another user could write to is refused; `--missing-ok` never hides a
//! daemon that runs but listens elsewhere.
//!
//! None of these touch the machine's `/run`: `CTL_RUN_DIR` moves the convention's root into
//! the test's sandbox, on both sides.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use tests::{bins, require_root, run, Daemon, Run, Sandbox, NOBODY};

/// The sandbox's stand-in for `/run`, owned by root, mode 0755 like the real one.
fn run_dir(sb: &Sandbox) -> PathBuf {
    sb.open_to_other_users();
    let run = sb.path("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    run
}

/// Makes `dir` owned by nobody with `mode`, as `RuntimeDirectory=` with `User=nobody` would.
fn give_to_nobody(dir: &Path, mode: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let nobody = Some(rustix::fs::Uid::from_raw(NOBODY));
    let group = Some(rustix::fs::Gid::from_raw(NOBODY));
    rustix::fs::chown(dir, nobody, group).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `ctl ARGS` with the convention's root in the sandbox and no `CTL_SOCKET_DIR`.
fn ctl(sb: &Sandbox, args: &[&str]) -> Run {
    run(Command::new(&bins().ctl)
        .args(args)
        .env_remove("CTL_SOCKET_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .env("CTL_RUN_DIR", sb.path("run")))
}

/// Starts the demo as uid/gid nobody, as a system unit with `User=` would: no
/// `CTL_SOCKET_DIR`, no `XDG_RUNTIME_DIR`, its config and log in a directory of its own.
/// `extra` arguments are added; it does not wait.
fn spawn_as_nobody(sb: &Sandbox, name: &str, socket: PathBuf, extra: &[&str]) -> Daemon {
    let state = sb.path(&format!("{name}-state"));
    give_to_nobody(&state, 0o755);
    let cfg = state.join("demo.toml");
    std::fs::write(&cfg, crate::config(&state.join("demo.log"), 50, "alpha")).unwrap();
    let stdout = sb.path(&format!("{name}.stdout"));
    let stderr = sb.path(&format!("{name}.stderr"));
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(&bins().demo)
        .args(["--name", name, "--config", cfg.to_str().unwrap()])
        .args(extra)
        .env_remove("CTL_SOCKET_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .env("CTL_RUN_DIR", sb.path("run"))
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    // setpriv execs the daemon: the child's pid is the daemon's.
    Daemon {
        child: cmd.spawn().expect("spawn setpriv demo-daemon"),
        socket,
        stdout,
        stderr,
    }
}

#[test]
fn a_daemon_running_as_its_own_user_is_found_by_roots_ctl_and_listed() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let run = run_dir(&sb);
    // What RuntimeDirectory=ownuser makes for a unit with User=nobody.
    give_to_nobody(&run.join("ownuser"), 0o755);
    let socket = run.join("ownuser/ctl.sock");
    let daemon = spawn_as_nobody(&sb, "ownuser", socket.clone(), &[]);
    daemon.wait_ready();
    assert_eq!(std::fs::metadata(&socket).unwrap().uid(), NOBODY);

    // logrotate's postrotate line, as root, with no setting at all.
    let rotated = ctl(&sb, &["--json", "--missing-ok", "rotate", "ownuser"]).expect_code(0);
    let doc = rotated.json();
    assert_eq!(doc["socket"], socket.to_str().unwrap(), "{rotated}");
    assert_eq!(doc["daemon"]["pid"], daemon.pid(), "{rotated}");
    assert_eq!(
        doc["result"]["files"].as_array().map(Vec::len),
        Some(1),
        "{rotated}"
    );

    let listed = ctl(&sb, &["--json", "list"]).expect_code(0);
    let doc = listed.json();
    let entry = doc["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "ownuser")
        .unwrap_or_else(|| panic!("ownuser not listed: {listed}"));
    assert_eq!(entry["socket"], socket.to_str().unwrap(), "{listed}");
    assert_eq!(entry["state"], "serving", "{listed}");
    assert_eq!(entry["status"]["pid"], daemon.pid(), "{listed}");
}

#[test]
fn a_socket_in_a_runtime_dir_other_users_can_write_is_not_trusted() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let run = run_dir(&sb);
    // A directory anyone may write to: nobody's socket there could be a plant.
    let dir = run.join("planted");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.join("ctl.sock");
    let args = ["--socket", socket.to_str().unwrap()];
    let daemon = spawn_as_nobody(&sb, "planted", socket.clone(), &args);
    daemon.wait_ready();

    for args in [
        &["rotate", "planted"][..],
        &["--missing-ok", "rotate", "planted"],
    ] {
        let refused = ctl(&sb, args).expect_code(77);
        assert!(
            refused.stderr.contains("not trusting") && refused.stderr.contains("writable"),
            "{refused}"
        );
    }
    let listed = ctl(&sb, &["--json", "list"]).expect_code(77);
    let entry = &listed.json()["daemons"][0];
    assert_eq!(entry["name"], "planted", "{listed}");
    assert_eq!(entry["state"], "untrusted", "{listed}");

    // The same socket in a directory only root may write to is the daemon's.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let found = ctl(&sb, &["--json", "status", "planted"]).expect_code(0);
    assert_eq!(found.json()["result"]["pid"], daemon.pid(), "{found}");
}

#[test]
fn missing_ok_does_not_hide_a_daemon_that_listens_elsewhere() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("run")).unwrap();
    // Found by the lock it holds for a socket named for it, not by its process name: the
    // binary is `demo-daemon`, the daemon another name, as the shipped unit runs `--name demo`.
    // A name no other test runs a daemon under: a root daemon of that name running in another
    // sandbox would be found too, and rightly.
    let name = format!("elsew{}", std::process::id());
    let exe = bins().demo.clone();
    let socket = sb.path(&format!("elsewhere/{name}.sock"));
    let log = sb.path("elsewhere.log");
    let cfg = sb.write_config("elsewhere.toml", &crate::config(&log, 50, "alpha"));
    let stderr = sb.path("elsewhere.stderr");
    let mut daemon = Daemon {
        child: Command::new(&exe)
            .args([
                "--name",
                &name,
                "--config",
                cfg.to_str().unwrap(),
                "--socket",
            ])
            .arg(&socket)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn the demo under its own name"),
        socket: socket.clone(),
        stdout: sb.path("elsewhere.stdout"),
        stderr,
    };
    daemon.wait_ready();

    let hidden = ctl(&sb, &["--missing-ok", "--quiet", "rotate", &name]).expect_code(69);
    let pid = format!("pid {}", daemon.pid());
    for part in [pid.as_str(), socket.to_str().unwrap(), "is running"] {
        assert!(hidden.stderr.contains(part), "{part:?} missing: {hidden}");
    }
    let json = ctl(&sb, &["--missing-ok", "--json", "rotate", &name]).expect_code(69);
    assert_eq!(json.json()["error"]["kind"], "not_listening", "{json}");

    // With the process gone, the same line is the stopped daemon --missing-ok is for: it left
    // its socket and lock file where ctl does not look, so ctl cannot tell that it died.
    daemon.child.kill().unwrap();
    daemon.wait_exit();
    let skipped = ctl(&sb, &["--missing-ok", "rotate", &name]).expect_code(0);
    assert!(skipped.stdout.contains("nothing to do"), "{skipped}");
    ctl(&sb, &["rotate", &name]).expect_code(69);
}

/// Starts the demo as root with the convention's root in the sandbox: it listens at
/// `RUN/ctl/NAME.sock`, or where `extra` says. Waits until it accepts at `socket`.
fn start_as_root(sb: &Sandbox, name: &str, socket: PathBuf, extra: &[&str]) -> Daemon {
    let log = sb.path(&format!("{name}.log"));
    let cfg = sb.write_config(&format!("{name}.toml"), &crate::config(&log, 50, "alpha"));
    let stdout = sb.path(&format!("{name}.stdout"));
    let stderr = sb.path(&format!("{name}.stderr"));
    let daemon = Daemon {
        child: Command::new(&bins().demo)
            .args(["--name", name, "--config", cfg.to_str().unwrap()])
            .args(extra)
            .env_remove("CTL_SOCKET_DIR")
            .env_remove("XDG_RUNTIME_DIR")
            .env("CTL_RUN_DIR", sb.path("run"))
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn demo-daemon"),
        socket,
        stdout,
        stderr,
    };
    daemon.wait_ready();
    daemon
}

/// The daemon's user owns `RUN/xd`, as `RuntimeDirectory=xd` with `User=nobody` makes it, and
/// names its socket a link to root's daemon `other`: root's `ctl drain xd` must not reach
/// `other`, which nobody gets 77 from when asking it directly.
#[test]
fn a_link_planted_at_a_daemons_place_is_refused_and_not_followed() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let run = run_dir(&sb);
    let other = start_as_root(&sb, "other", run.join("ctl/other.sock"), &[]);
    give_to_nobody(&run.join("xd"), 0o755);
    let planted = run.join("xd/ctl.sock");
    // Planted by nobody, as nobody would.
    let plant = Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .args(["ln", "-s", "../ctl/other.sock"])
        .arg(&planted)
        .status()
        .unwrap();
    assert!(plant.success());
    assert_eq!(
        std::fs::symlink_metadata(&planted).unwrap().uid(),
        NOBODY,
        "the link is nobody's"
    );

    for args in [&["drain", "xd"][..], &["--missing-ok", "drain", "xd"]] {
        let refused = ctl(&sb, args).expect_code(77);
        assert!(
            refused.stderr.contains(planted.to_str().unwrap())
                && refused.stderr.contains("symbolic link"),
            "{refused}"
        );
    }
    let listed = ctl(&sb, &["--json", "list"]).expect_code(77);
    let states = tests::list_states(&listed.json())
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s.to_owned()))
        .collect::<Vec<_>>();
    assert!(
        states.contains(&("xd".to_owned(), "untrusted".to_owned())),
        "{listed}"
    );

    let status = ctl(&sb, &["--json", "status", "other"]).expect_code(0);
    let doc = status.json();
    assert_eq!(doc["result"]["pid"], other.pid(), "{status}");
    assert_eq!(
        doc["result"]["draining"], false,
        "other was drained: {status}"
    );
}

/// A daemon named beta answering where alpha is looked for (started with another name, or a
/// place pointed at it) is not taken for alpha: 77, naming what answered.
#[test]
fn another_daemon_answering_at_a_names_place_is_refused_naming_it() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let run = run_dir(&sb);
    let socket = run.join("ctl/alpha.sock");
    let beta = start_as_root(
        &sb,
        "beta",
        socket.clone(),
        &["--socket", socket.to_str().unwrap()],
    );

    let refused = ctl(&sb, &["drain", "alpha"]).expect_code(77);
    let pid = format!("pid {}", beta.pid());
    for part in [
        "\"beta\"",
        pid.as_str(),
        "not alpha",
        socket.to_str().unwrap(),
    ] {
        assert!(refused.stderr.contains(part), "{part:?} missing: {refused}");
    }
    let json = ctl(&sb, &["--json", "--missing-ok", "drain", "alpha"]).expect_code(77);
    assert_eq!(json.json()["error"]["kind"], "wrong_daemon", "{json}");

    // By its socket path it is taken as given, and shows its name.
    let by_path = ctl(&sb, &["--json", "status", socket.to_str().unwrap()]).expect_code(0);
    assert_eq!(by_path.json()["daemon"]["name"], "beta", "{by_path}");
    assert_eq!(by_path.json()["result"]["draining"], false, "{by_path}");
}
