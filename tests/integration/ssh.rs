//! Targets on another host (`ssh://[USER@]HOST[:PORT]/NAME`, `--host`), against a real `sshd`
//! that each test starts on 127.0.0.1 only, on a free port, with host and client keys it makes
//! in its sandbox, and the host key pinned in the client's known_hosts: the real ssh client,
//! the real remote shell, the real `ctl` on the "remote" side talking to a real demo daemon.
//! Nothing but 127.0.0.1 is ever contacted.
//!
//! Needs root (sshd runs as root to log users in; one test adds a user) and openssh-server
//! (`bash .ci/test` installs it); skipped without them, except under CI.

use crate::start_demo;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tests::{bins, run, wait_for, Daemon, Run, Sandbox, WAIT};

const SSHD: &str = "/usr/sbin/sshd";

/// Whether this test can run: root and sshd; else skipped (a failure under CI).
#[track_caller]
fn can_run() -> bool {
    if !tests::require_root() {
        return false;
    }
    if Path::new(SSHD).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test needs openssh-server (`bash .ci/test` installs it), and CI must run it"
    );
    eprintln!("skipped: no {SSHD} here");
    false
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ctl-test", "-f"])
        .arg(path))
    .expect_code(0);
}

/// A port on 127.0.0.1 that nothing listens on (just now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real sshd on 127.0.0.1, killed when dropped, and a client configuration for it.
struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl Sshd {
    /// Starts sshd with its files in `dir/ssh`, letting in with the client key each user that
    /// has a file in `dir/ssh/keys/`, and passing `CTL_SOCKET_DIR` from the client.
    fn start(dir: &Path) -> Sshd {
        let dir = dir.join("ssh");
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        keygen(&dir.join("host_key"));
        keygen(&dir.join("client_key"));
        keygen(&dir.join("stranger_key"));
        // sshd's privilege separation directory: Debian's service makes it; it is not here
        // when the service never ran.
        std::fs::create_dir_all("/run/sshd").unwrap();
        std::fs::set_permissions("/run/sshd", std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = dir.join("sshd.log");
        // A port chosen free may be taken before sshd binds it: try another.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\n\
                     Port {port}\n\
                     HostKey {d}/host_key\n\
                     AuthorizedKeysFile {d}/keys/%u\n\
                     PidFile {d}/sshd.pid\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\n\
                     PermitRootLogin prohibit-password\n\
                     AcceptEnv CTL_SOCKET_DIR\n\
                     LogLevel VERBOSE\n",
                    d = dir.display()
                ),
            )
            .unwrap();
            let child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("spawn sshd");
            let mut sshd = Sshd {
                child,
                port,
                dir: dir.clone(),
                log: log.clone(),
            };
            if sshd.wait_ready() {
                return sshd;
            }
        }
        panic!(
            "sshd did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Waits until sshd says who it is on a connection; false if it exited (its port taken).
    fn wait_ready(&mut self) -> bool {
        let port = self.port;
        let child = &mut self.child;
        wait_for("sshd to accept", WAIT, || {
            if child.try_wait().unwrap().is_some() {
                return Some(false);
            }
            let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut banner = [0u8; 4];
            conn.read_exact(&mut banner).ok()?;
            Some(&banner == b"SSH-")
        })
    }

    /// Lets `user` log in with the client key.
    fn authorize(&self, user: &str) {
        std::fs::copy(
            self.dir.join("client_key.pub"),
            self.dir.join("keys").join(user),
        )
        .unwrap();
    }

    /// A client configuration for this sshd with `key`, the host key pinned, and
    /// `CTL_SOCKET_DIR` sent along: what `CTL_SSH` points ssh at with `-F`.
    fn client_config(&self, key: &str, socket_dir: &Path) -> PathBuf {
        let known = self.dir.join("known_hosts");
        let host_key = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        let mut pin = std::fs::File::create(&known).unwrap();
        writeln!(pin, "[127.0.0.1]:{} {}", self.port, host_key.trim()).unwrap();
        let path = self.dir.join(format!("{key}.config"));
        std::fs::write(
            &path,
            format!(
                "Host *\n\
                 \x20 IdentityFile {d}/{key}\n\
                 \x20 IdentitiesOnly yes\n\
                 \x20 UserKnownHostsFile {known}\n\
                 \x20 GlobalKnownHostsFile /dev/null\n\
                 \x20 StrictHostKeyChecking yes\n\
                 \x20 PasswordAuthentication no\n\
                 \x20 KbdInteractiveAuthentication no\n\
                 \x20 SetEnv CTL_SOCKET_DIR={sockets}\n",
                d = self.dir.display(),
                known = known.display(),
                sockets = socket_dir.display()
            ),
        )
        .unwrap();
        path
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sandbox with the demo daemon `demo` and an sshd that lets root in with the client key.
struct Host {
    // Dropped first: the daemon and sshd before their directory.
    daemon: Daemon,
    sshd: Sshd,
    sb: Sandbox,
    /// `CTL_SSH`: the real ssh with the client configuration.
    ssh: String,
}

impl Host {
    fn new(extra: &[&str]) -> Host {
        let sb = Sandbox::new();
        let daemon = start_demo(&sb, "demo", 50, extra);
        let sshd = Sshd::start(sb.dir.path());
        sshd.authorize("root");
        let config = sshd.client_config("client_key", &sb.socket_dir());
        Host {
            daemon,
            ssh: format!("ssh -F {}", config.display()),
            sshd,
            sb,
        }
    }

    /// `ssh://USER@127.0.0.1:PORT/NAME`.
    fn url(&self, user: &str, name: &str) -> String {
        format!("ssh://{user}@127.0.0.1:{}/{name}", self.sshd.port)
    }

    /// Runs the real `ctl ARGS` here, with `CTL_SSH` and the remote ctl set; no
    /// `CTL_SOCKET_DIR`: nothing local is looked at.
    fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_with(args, |_| {})
    }

    fn ctl_with(&self, args: &[&str], env: impl FnOnce(&mut Command)) -> Run {
        let mut cmd = Command::new(&bins().ctl);
        cmd.args(args)
            .env_remove("CTL_SOCKET_DIR")
            .env("CTL_SSH", &self.ssh)
            .env("CTL_REMOTE_CTL", &bins().ctl);
        env(&mut cmd);
        let ran = run(&mut cmd);
        if ran.code == Some(255) || ran.stderr.contains("panicked") {
            panic!("{ran}\nsshd's log:\n{}", self.sshd.log());
        }
        ran
    }

    /// A remote "ctl": a shell script in the sandbox that ignores its arguments.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.sb.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

fn kind(doc: &Value) -> &str {
    doc["error"]["kind"].as_str().unwrap_or_default()
}

#[test]
fn ssh_status_reload_and_call_answer_as_a_local_target_does() {
    if !can_run() {
        return;
    }
    let host = Host::new(&[]);
    let url = host.url("root", "demo");

    let status = host.ctl(&["status", &url]).expect_code(0);
    let pid = host.daemon.pid();
    assert!(
        status
            .stdout
            .starts_with(&format!("demo 0.1.0 (pid {pid}), up")),
        "the local rendering of the remote reply: {status}"
    );
    let local = host.sb.ctl(&["status", "demo"]).expect_code(0);
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(rows(&status.stdout), rows(&local.stdout), "the same rows");

    let doc = host.ctl(&["--json", "status", &url]).expect_code(0).json();
    assert_eq!(doc["target"], url.as_str(), "{doc}");
    assert_eq!(doc["operation"], "status");
    assert_eq!(doc["daemon"]["pid"], pid);
    assert_eq!(
        doc["socket"],
        host.sb.socket_dir().join("demo.sock").to_str().unwrap()
    );
    let local = host
        .sb
        .ctl(&["--json", "status", "demo"])
        .expect_code(0)
        .json();
    let keys = |d: &Value| -> Vec<String> {
        d["result"]["values"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        keys(&doc),
        keys(&local),
        "the daemon's fields, in its order"
    );
    assert_eq!(
        doc["result"]["values"]["interval"], local["result"]["values"]["interval"],
        "typed values as the local document has them"
    );

    // --host with a name is the same target.
    let port = host.sshd.port.to_string();
    let doc = host
        .ctl(&[
            "--json",
            "--host",
            &format!("root@127.0.0.1:{port}"),
            "hello",
            "demo",
        ])
        .expect_code(0)
        .json();
    assert_eq!(doc["target"], url.as_str());
    assert!(doc["result"]["operations"]
        .as_array()
        .unwrap()
        .contains(&"reload".into()));

    // A reload applies there, as it does locally, and a refused one exits 1 with the line.
    let log = host.sb.path("demo.log");
    let config = host.sb.path("demo.toml");
    std::fs::write(&config, crate::config(&log, 50, "beta")).unwrap();
    let doc = host.ctl(&["--json", "reload", &url]).expect_code(0).json();
    assert_eq!(doc["result"]["generation"], 2, "{doc}");
    std::fs::write(
        &config,
        format!("{}this is not toml\n", crate::config(&log, 50, "x")),
    )
    .unwrap();
    let refused = host.ctl(&["reload", &url]).expect_code(1);
    assert!(
        refused.stderr.contains("line 4") && refused.stderr.contains(&url),
        "{refused}"
    );
    let doc = host.ctl(&["--json", "reload", &url]).expect_code(1).json();
    assert_eq!(kind(&doc), "failed", "{doc}");

    // The caller's words reach the daemon exact, through the remote shell: never run.
    let text = "it's $(touch PWNED) `touch PWNED2`; touch PWNED3";
    let doc = host
        .ctl(&[
            "--json",
            "call",
            &url,
            "set-message",
            &format!("text={text}"),
        ])
        .expect_code(0)
        .json();
    assert_eq!(doc["result"]["message"], text, "{doc}");
    assert_eq!(doc["changed"], true);
    for planted in ["PWNED", "PWNED2", "PWNED3"] {
        assert!(!Path::new("/").join(planted).exists());
        assert!(!host.sb.path(planted).exists());
    }
    // Prometheus text from the remote's JSON reply.
    let prom = host.ctl(&["counters", "--prometheus", &url]).expect_code(0);
    assert!(
        prom.stdout
            .contains("demo_lines_written_total{daemon=\"demo\"}"),
        "{prom}"
    );
}

#[test]
fn no_daemon_there_is_69_as_locally_and_missing_ok_skips_it() {
    if !can_run() {
        return;
    }
    let host = Host::new(&[]);
    let url = host.url("root", "nope");
    let doc = host.ctl(&["--json", "status", &url]).expect_code(69).json();
    assert_eq!(kind(&doc), "no_daemon", "{doc}");
    assert_eq!(doc["target"], url.as_str());
    let local = host
        .sb
        .ctl(&["--json", "status", "nope"])
        .expect_code(69)
        .json();
    assert_eq!(doc["error"]["message"], local["error"]["message"]);
    let skipped = host
        .ctl(&["--json", "--missing-ok", "rotate", &url])
        .expect_code(0)
        .json();
    assert_eq!(skipped["ok"], true, "{skipped}");
    assert!(skipped["skipped"].as_str().unwrap().contains("nope.sock"));
    host.ctl(&["--missing-ok", "rotate", &url]).expect_code(0);
}

/// A user of this machine for one test: created with a shell and an unlocked (but unusable)
/// password, so that sshd lets it in by key, and removed when dropped.
struct TestUser {
    name: String,
    uid: u32,
}

impl TestUser {
    fn create() -> TestUser {
        let name = format!("ctl-ssh-{}", std::process::id());
        // `*`: no password works, and unlike useradd's default `!` it does not lock the
        // account, which sshd without PAM refuses even with a key.
        run(Command::new("useradd").args([
            "--no-create-home",
            "--home-dir",
            "/",
            "--shell",
            "/bin/sh",
            "--no-user-group",
            "--gid",
            "65534",
            "--password",
            "*",
            &name,
        ]))
        .expect_code(0);
        // Removed on drop from here on, even if what follows fails.
        let mut user = TestUser { name, uid: 0 };
        let id = run(Command::new("id").args(["-u", &user.name])).expect_code(0);
        user.uid = id.stdout.trim().parse().unwrap();
        user
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn the_remote_daemon_judges_the_remote_users_credentials() {
    if !can_run() {
        return;
    }
    let user = TestUser::create();
    let uid = user.uid.to_string();
    let host = Host::new(&["--socket-mode", "666", "--allow-read-only-uid", &uid]);
    host.sb.open_to_other_users();
    host.sshd.authorize(&user.name);
    let url = host.url(&user.name, "demo");

    // Granted read: status works for it there.
    let doc = host.ctl(&["--json", "status", &url]).expect_code(0).json();
    assert_eq!(doc["daemon"]["pid"], host.daemon.pid(), "{doc}");
    // Not operate: refused by the daemon's policy, judging that user, not root who ran ctl.
    let doc = host.ctl(&["--json", "reload", &url]).expect_code(77).json();
    assert_eq!(kind(&doc), "denied", "{doc}");
    assert_eq!(doc["error"]["detail"]["uid"], user.uid, "{doc}");
    assert_eq!(doc["error"]["detail"]["kind"], "denied");
    let text = host.ctl(&["reload", &url]).expect_code(77);
    assert!(text.stderr.contains("`operate`"), "names the level: {text}");
}

#[test]
fn ssh_refusing_the_key_is_77_naming_the_host() {
    if !can_run() {
        return;
    }
    let host = Host::new(&[]);
    let stranger = host
        .sshd
        .client_config("stranger_key", &host.sb.socket_dir());
    let url = host.url("root", "demo");
    let ssh = format!("ssh -F {}", stranger.display());
    let ran = host
        .ctl_with(&["status", &url], |c| {
            c.env("CTL_SSH", &ssh);
        })
        .expect_code(77);
    assert!(
        ran.stderr.contains("ssh to 127.0.0.1 was refused")
            && ran.stderr.contains("Permission denied"),
        "{ran}"
    );
    let doc = host
        .ctl_with(&["--json", "status", &url], |c| {
            c.env("CTL_SSH", &ssh);
        })
        .expect_code(77)
        .json();
    assert_eq!(kind(&doc), "ssh_denied", "{doc}");
    // A user with no key there at all: the same.
    let doc = host
        .ctl(&["--json", "status", &host.url("daemon", "demo")])
        .expect_code(77)
        .json();
    assert_eq!(kind(&doc), "ssh_denied", "{doc}");
}

#[test]
fn a_host_that_does_not_answer_is_75_within_the_timeout_and_ssh_is_stopped() {
    if !can_run() {
        return;
    }
    let host = Host::new(&[]);
    // Accepts (the kernel completes the handshake) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("ssh://root@127.0.0.1:{port}/demo");
    let started = Instant::now();
    let doc = host
        .ctl(&["--json", "--timeout", "1s", "status", &url])
        .expect_code(75)
        .json();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(kind(&doc), "timeout", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{doc}"
    );
    // ssh is gone: it closed its end of the connection (after its own banner).
    let (mut conn, _) = silent.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut said = Vec::new();
    conn.read_to_end(&mut said)
        .expect("ssh closed the connection");
    assert!(said.starts_with(b"SSH-2.0-"), "{said:?}");

    // Nothing listening at all: unreachable, 69.
    let doc = host
        .ctl(&[
            "--json",
            "--timeout",
            "5s",
            "status",
            &format!("ssh://root@127.0.0.1:{}/demo", free_port()),
        ])
        .expect_code(69)
        .json();
    assert_eq!(kind(&doc), "unreachable", "{doc}");

    // A remote ctl that does not answer in time: stopped at the deadline, 75.
    let slow = host.script("slow-ctl", "sleep 30");
    let started = Instant::now();
    let ran = host
        .ctl_with(
            &["--timeout", "2s", "status", &host.url("root", "demo")],
            |c| {
                c.env("CTL_REMOTE_CTL", &slow);
            },
        )
        .expect_code(75);
    assert!(started.elapsed() < Duration::from_secs(10), "{ran}");
}

#[test]
fn no_ctl_on_the_host_is_69_naming_the_host() {
    if !can_run() {
        return;
    }
    let host = Host::new(&[]);
    let url = host.url("root", "demo");
    let doc = host
        .ctl_with(&["--json", "status", &url], |c| {
            c.env("CTL_REMOTE_CTL", "/nonexistent/ctl");
        })
        .expect_code(69)
        .json();
    assert_eq!(kind(&doc), "no_ctl", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("127.0.0.1 has no ctl") && message.contains("/nonexistent/ctl"),
        "{doc}"
    );
}

#[test]
fn a_hostile_remote_is_a_protocol_error_and_reaches_the_terminal_escaped() {
    if !can_run() {
        return;
    }
    let host = Host::new(&[]);
    let url = host.url("root", "demo");
    let with = |script: &Path, args: &[&str]| {
        let script = script.to_owned();
        host.ctl_with(args, move |c| {
            c.env("CTL_REMOTE_CTL", script);
        })
    };
    let raw = |ran: &Run| {
        let all = format!("{}{}", ran.stdout, ran.stderr);
        assert!(
            !all.contains(|c: char| c.is_control() && c != '\n'),
            "a control character reached the terminal: {ran}"
        );
    };

    // Garbage with terminal escapes.
    let garbage = host.script("garbage", r"printf '\033]0;owned\007\033[2J not json\n'");
    let ran = with(&garbage, &["status", &url]).expect_code(76);
    raw(&ran);
    assert!(ran.stderr.contains("did not answer as ctl does"), "{ran}");
    let doc = with(&garbage, &["--json", "status", &url])
        .expect_code(76)
        .json();
    assert_eq!(kind(&doc), "protocol");

    // Far too much: cut off at 1 MiB, ssh stopped.
    let huge = host.script("huge", "head -c 50000000 /dev/zero | tr '\\0' x");
    let started = Instant::now();
    let ran = with(&huge, &["status", &url]).expect_code(76);
    assert!(ran.stderr.contains("1 MiB"), "{ran}");
    assert!(started.elapsed() < Duration::from_secs(30), "{ran}");

    // A well-formed document whose text drives the terminal and forges rows: shown escaped,
    // with the code it gives.
    let forged = host.script(
        "forged",
        r#"printf '%s\n' '{"ok":false,"exit_code":1,"operation":"status","target":"demo","socket":null,"error":{"kind":"failed","message":"\u001b]0;owned\u0007bad\nctl: status demo: all fine \u202e","detail":null}}'
exit 1"#,
    );
    let ran = with(&forged, &["status", &url]).expect_code(1);
    raw(&ran);
    assert_eq!(ran.stderr.lines().count(), 1, "one row: {ran}");
    assert!(ran.stderr.contains("\\u{1b}]0;owned"), "{ran}");
    // The document's exact text in --json, escaped as JSON.
    let doc = with(&forged, &["--json", "status", &url])
        .expect_code(1)
        .json();
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("\u{1b}]0;owned"));
    raw(&with(&forged, &["--json", "status", &url]));

    // A success document, but an exit code that says otherwise.
    let liar = host.script(
        "liar",
        r#"printf '%s\n' '{"ok":true,"exit_code":0,"operation":"resume","target":"demo","socket":null,"daemon":{"name":"demo","version":"1","pid":1,"protocol":1},"result":{"was_draining":false}}'
exit 3"#,
    );
    let doc = with(&liar, &["--json", "resume", &url])
        .expect_code(76)
        .json();
    assert_eq!(kind(&doc), "protocol", "{doc}");
    // The same document for another operation.
    let doc = with(&liar, &["--json", "status", &url])
        .expect_code(76)
        .json();
    assert_eq!(kind(&doc), "protocol", "{doc}");
}
