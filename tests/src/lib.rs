//! Harness for the integration tests: builds and finds the real binaries, starts real
//! `demo-daemon` processes in private directories, runs the real `ctl`, and waits for events
//! (a socket accepting, a line appearing) with bounded retries. Every failure message carries
//! what is needed to understand it: the command, its exit code and output, the daemon's log.

use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Longest any single wait in a test may take before it fails. It only catches "never": every
/// wait ends on an event, and on a loaded machine (two cores, a build beside the tests) an
/// event that comes can take well over 20 s, so this is no latency bound.
pub const WAIT: Duration = Duration::from_secs(60);

/// Paths of the binaries under test.
pub struct Bins {
    pub ctl: PathBuf,
    pub demo: PathBuf,
    /// `hostile-client`: misbehaves on the wire, for the abuse tests and the soak script.
    pub hostile: PathBuf,
    /// control-server's `embedded` example: the smallest whole embedding.
    pub embedded: PathBuf,
    /// control-server's `blocking` example: a daemon without tokio or a tracing subscriber.
    pub blocking: PathBuf,
    /// control-server-c's static library, `libcontrol_server_c.a`.
    pub c_library: PathBuf,
}

/// Builds `ctl` and `demo-daemon` (once per test process) with the profile and target
/// directory this test binary was built with, and returns their paths. Building here keeps
/// `cargo test -p tests` from running stale binaries.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        // .../target/<profile>/deps/integration-<hash>
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .to_owned();
        let target_dir = profile_dir.parent().expect("target dir").to_owned();
        let profile = profile_dir
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let profile = if profile == "debug" {
            "dev".to_owned()
        } else {
            profile
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "control-ctl",
                "-p",
                "demo-daemon",
                "--bin",
                "ctl",
                "--bin",
                "demo-daemon",
                "-p",
                "tests",
                "--bin",
                "hostile-client",
                "-p",
                "control-server",
                "--example",
                "embedded",
                "--example",
                "blocking",
                "-p",
                "control-server-c",
                "--lib",
                "--profile",
            ])
            .arg(&profile)
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "building ctl and demo-daemon failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Bins {
            ctl: profile_dir.join("ctl"),
            demo: profile_dir.join("demo-daemon"),
            hostile: profile_dir.join("hostile-client"),
            embedded: profile_dir.join("examples").join("embedded"),
            blocking: profile_dir.join("examples").join("blocking"),
            c_library: profile_dir.join("libcontrol_server_c.a"),
        }
    })
}

/// Compiles the C program `source` with `cc`, `flags` and then `libs` into `dir` (cargo's
/// temporary directory for tests, `CARGO_TARGET_TMPDIR`) as `name`, and returns its path. Built
/// under a name of this process's, then renamed: another test run may build it at the same time.
pub fn compile_c(
    dir: &Path,
    source: &Path,
    name: &str,
    flags: &[&OsStr],
    libs: &[&OsStr],
) -> PathBuf {
    let bin = dir.join(name);
    let building = dir.join(format!("{name}.{}", std::process::id()));
    let out = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&building)
        .arg(source)
        .args(libs)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run cc ({e}): the tests build C programs; apt-get install -y gcc")
        });
    assert!(
        out.status.success(),
        "cc {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&building, &bin).unwrap();
    bin
}

/// Polls `check` until it returns `Some`, at most for `limit`; panics with `what` otherwise.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Makes a FIFO at `path`, to be the demo's `reload_gate` or `job_gate`: what the daemon does
/// there waits until the test calls [`open_gate`].
pub fn make_gate(path: &Path) {
    // mknodat rather than mkfifoat, which rustix's 1.0 floor lacks.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Opens the gate at `path` once: waits (at most [`WAIT`], then fails) until the daemon waits
/// at it, which is when it has the FIFO open for reading, and writes a line to it.
///
/// A reader that has passed the gate but not yet closed the FIFO would take the line too:
/// before opening a gate a second time, wait for the daemon to say it waits there again.
pub fn open_gate(path: &Path) {
    use rustix::fs::{Mode, OFlags};
    let fifo = wait_for(
        &format!("the daemon to wait at the gate {}", path.display()),
        WAIT,
        || {
            match rustix::fs::open(
                path,
                OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => Some(std::fs::File::from(fd)),
                // No reader yet.
                Err(rustix::io::Errno::NXIO) => None,
                Err(e) => panic!("cannot open the gate {}: {e}", path.display()),
            }
        },
    );
    (&fifo)
        .write_all(b"open\n")
        .unwrap_or_else(|e| panic!("cannot write to the gate {}: {e}", path.display()));
}

/// A private directory for one test: socket directory, config, log files.
pub struct Sandbox {
    pub dir: TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("ctl-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The socket directory handed to daemons and ctl through `CTL_SOCKET_DIR`.
    pub fn socket_dir(&self) -> PathBuf {
        self.path("sockets")
    }

    /// Writes a config file for the demo daemon and returns its path.
    pub fn write_config(&self, name: &str, toml: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, toml).expect("write config");
        path
    }

    /// Starts `demo-daemon --name NAME --config CONFIG EXTRA...` and waits until it accepts.
    pub fn start_daemon(&self, name: &str, config: &Path, extra: &[&str]) -> Daemon {
        let mut args: Vec<String> = vec![
            "--name".into(),
            name.into(),
            "--config".into(),
            config.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let daemon = self.spawn_daemon(name, &args, &[]);
        daemon.wait_ready();
        daemon
    }

    /// Spawns `demo-daemon ARGS` with `CTL_SOCKET_DIR` set and `env` added, without waiting.
    pub fn spawn_daemon(&self, name: &str, args: &[String], env: &[(&str, &Path)]) -> Daemon {
        self.spawn_daemon_with(name, args, |cmd| {
            for (k, v) in env {
                cmd.env(k, v);
            }
        })
    }

    /// Like [`Sandbox::spawn_daemon`], with at most `nofile` open descriptors (`ulimit -n`).
    pub fn spawn_daemon_with_nofile(&self, name: &str, args: &[String], nofile: u64) -> Daemon {
        use std::os::unix::process::CommandExt;
        let limit = rustix::process::Rlimit {
            current: Some(nofile),
            maximum: Some(nofile),
        };
        self.spawn_daemon_with(name, args, |cmd| {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                        .map_err(std::io::Error::from)
                });
            }
        })
    }

    /// Spawns `demo-daemon ARGS` with this sandbox's socket directory, its output in
    /// `NAME.stdout` and `NAME.stderr`, and whatever `adjust` adds to the command.
    fn spawn_daemon_with(
        &self,
        name: &str,
        args: &[String],
        adjust: impl FnOnce(&mut Command),
    ) -> Daemon {
        let stdout = self.path(&format!("{name}.stdout"));
        let stderr = self.path(&format!("{name}.stderr"));
        let mut cmd = Command::new(&bins().demo);
        cmd.args(args)
            .env("CTL_SOCKET_DIR", self.socket_dir())
            .env("RUST_LOG", "info")
            // No audit lines to the machine's own syslog; a test that reads them binds a
            // socket of its own and sets this to it.
            .env("CTL_SYSLOG_SOCKET", "")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        adjust(&mut cmd);
        let child = cmd.spawn().expect("spawn demo-daemon");
        Daemon {
            child,
            socket: args
                .iter()
                .position(|a| a == "--socket")
                .map(|i| PathBuf::from(&args[i + 1]))
                .unwrap_or_else(|| self.socket_dir().join(format!("{name}.sock"))),
            stdout,
            stderr,
        }
    }

    /// Runs the real `ctl ARGS` with this sandbox's socket directory.
    pub fn ctl(&self, args: &[&str]) -> Run {
        run(Command::new(&bins().ctl)
            .args(args)
            .env("CTL_SOCKET_DIR", self.socket_dir()))
    }
}

/// The uid and gid tests switch to when they play another user.
pub const NOBODY: u32 = 65534;

/// Whether the tests run as root (needed to switch users).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// For a test that needs root: true when running as root; otherwise prints that the test is
/// skipped and returns false, except under CI (`CI` set), where a skip would hide a gap, so it
/// panics.
#[track_caller]
pub fn require_root() -> bool {
    if is_root() {
        return true;
    }
    let at = std::panic::Location::caller();
    assert!(
        std::env::var_os("CI").is_none(),
        "{at}: this test needs root, and CI must run it"
    );
    eprintln!("skipped ({at}): needs root");
    false
}

/// Whether `program` is on the PATH. Without it, prints that the test part needing it is
/// skipped, except under CI (`CI` set), where it panics: `.ci/test` installs it.
#[track_caller]
pub fn have_program(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let at = std::panic::Location::caller();
        assert!(
            std::env::var_os("CI").is_none(),
            "{at}: this test needs {program} (`bash .ci/test` installs it), and CI must run it"
        );
        eprintln!("skipped ({at}): no {program} here");
    }
    found
}

/// The Python that `.ci/test` installs `prometheus_client` into.
pub const PROMETHEUS_PYTHON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/python-venv/bin/python3"
);

/// For a test that needs a Python package: a `python3` that imports `module` (the CI
/// virtualenv's, else the system's). Without one, prints that the test is skipped and returns
/// `None`, except under CI (`CI` set), where it panics: `bash .ci/test` installs it.
#[track_caller]
pub fn require_python_module(module: &str) -> Option<PathBuf> {
    let at = std::panic::Location::caller();
    for python in [PROMETHEUS_PYTHON, "python3"] {
        let imports = Command::new(python)
            .args(["-c", &format!("import {module}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if imports {
            return Some(PathBuf::from(python));
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{at}: this test needs the Python package {module} (`bash .ci/test` installs it into \
         {PROMETHEUS_PYTHON}), and CI must run it"
    );
    eprintln!("skipped ({at}): no python3 here imports {module}; `bash .ci/test` installs it");
    None
}

impl Sandbox {
    /// Runs `ctl ARGS` as uid/gid `nobody`, with no supplementary groups.
    pub fn ctl_as_nobody(&self, args: &[&str]) -> Run {
        run(Command::new("setpriv")
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(&bins().ctl)
            .args(args)
            .env("CTL_SOCKET_DIR", self.socket_dir()))
    }

    /// Lets other users reach the socket directory, so that only a socket's own mode and the
    /// daemon's policy stand in their way.
    pub fn open_to_other_users(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A running `demo-daemon`; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the socket accepts connections; fails at once if the daemon exits.
    pub fn wait_ready(&self) {
        wait_for(
            &format!("{} to accept connections", self.socket.display()),
            WAIT,
            || {
                self.assert_alive();
                UnixStream::connect(&self.socket).ok().map(|_| ())
            },
        );
    }

    /// Panics with the daemon's log if it has exited.
    pub fn assert_alive(&self) {
        // Signal 0 checks existence without reaping, so `child` stays usable.
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        let alive = rustix::process::test_kill_process(pid).is_ok() && !self.is_zombie();
        assert!(
            alive,
            "demo-daemon (pid {}) is not running; its log:\n{}",
            self.pid(),
            self.log()
        );
    }

    fn is_zombie(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// Waits for the daemon to exit, at most `WAIT`.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = &mut self.child;
        wait_for("demo-daemon to exit", WAIT, || child.try_wait().unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The outcome of one `ctl` run.
pub struct Run {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Asserts the exit code, printing everything if it differs.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "{self}");
        self
    }

    /// Parses stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }
}

/// `(name, state)` of each daemon in `ctl --json list`'s document, in its order.
pub fn list_states(doc: &serde_json::Value) -> Vec<(&str, &str)> {
    doc["daemons"]
        .as_array()
        .expect("a list of daemons")
        .iter()
        .map(|d| {
            let field = |key: &str| d[key].as_str().unwrap_or_default();
            (field("name"), field("state"))
        })
        .collect()
}

/// Runs a command to completion (at most 60 s, then it is killed and the test fails).
pub fn run(cmd: &mut Command) -> Run {
    run_within(cmd, Duration::from_secs(60))
}

/// Runs a command to completion in a process group of its own, so that past `limit` the
/// command and everything it forked are killed and the test fails with its stderr so far.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Run {
    use std::os::unix::process::CommandExt;
    let command = format!("{cmd:?}");
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command} did not finish within {limit:?}; killed. stderr so far:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Run {
        command,
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// One `seq=N` line of the demo daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub seq: u64,
    pub message: String,
    pub interval_ms: u64,
}

/// Parses the demo daemon's `seq=` lines from a log file's text, passing over its `tracing`
/// lines. Panics on a line that is neither whole.
pub fn parse_lines(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !is_tracing_line(l))
        .map(|l| {
            // A fragment left by a failed write followed by a whole line shows as a line that
            // does not start with, or holds more than one, `seq=`.
            assert!(
                l.starts_with("seq=") && l.matches("seq=").count() == 1,
                "torn line: {l:?}"
            );
            let field = |key: &str| {
                l.split(' ')
                    .find_map(|kv| kv.strip_prefix(key))
                    .unwrap_or_else(|| panic!("line without {key}: {l:?}"))
                    .to_owned()
            };
            Line {
                seq: field("seq=")
                    .parse()
                    .unwrap_or_else(|_| panic!("bad seq: {l:?}")),
                interval_ms: {
                    field("t_ms=")
                        .parse::<u64>()
                        .unwrap_or_else(|_| panic!("bad t_ms: {l:?}"));
                    field("interval_ms=")
                        .parse()
                        .unwrap_or_else(|_| panic!("bad interval_ms: {l:?}"))
                },
                message: l
                    .split_once(" message=")
                    .unwrap_or_else(|| panic!("line without message: {l:?}"))
                    .1
                    .to_owned(),
            }
        })
        .collect()
}

/// A line of the demo's own `tracing` output, which it writes into the same log file: it starts
/// with a timestamp (`2026-…`) and, being whole, holds no piece of a `seq=` line.
pub fn is_tracing_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && !line.contains("t_ms=")
}

/// The demo daemon's lines in `path` (none if it does not exist).
pub fn read_lines(path: &Path) -> Vec<Line> {
    parse_lines(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Sends raw bytes on a fresh connection to `socket` and returns the connection.
pub fn send_raw(socket: &Path, bytes: &[u8]) -> UnixStream {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream.write_all(bytes).expect("write");
    stream
}

/// Frames `payload` as the protocol does: 4-byte big-endian length, then the bytes.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Reads one frame from `stream`, with a bound on the wait. `None` when the daemon closed the
/// connection.
pub fn read_frame(stream: &mut UnixStream) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Whether the other end of `stream` has closed the connection, asked without reading or
/// writing (replies waiting to be read do not hide a hang-up).
pub fn peer_hung_up(stream: &UnixStream) -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(stream, PollFlags::RDHUP)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(_) => fds[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP),
        Err(e) => panic!("poll on a test connection: {e}"),
    }
}

/// Leaves a socket file at `path` that nobody listens on: what a crashed daemon leaves behind.
///
/// The listener is closed at once, but a child process that another test forks at that moment
/// briefly holds a copy of its descriptor (until its `exec`), so wait until connecting is
/// refused.
pub fn make_stale_socket(path: &Path) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    drop(std::os::unix::net::UnixListener::bind(path).expect("bind the soon-stale socket"));
    wait_for(
        &format!("{} to refuse connections", path.display()),
        WAIT,
        || UnixStream::connect(path).is_err().then_some(()),
    );
}

/// A listening socket at `path` whose queue of pending connections is full (`listen(0)` and
/// one connection nobody accepts): a blocking connect to it waits for as long as its owner
/// likes. Both ends are returned, to be kept for as long as the squat should last. Fails when
/// `path` is taken, or when the queue did not fill (the probe connected).
pub fn squat(path: &Path) -> std::io::Result<(rustix::fd::OwnedFd, rustix::fd::OwnedFd)> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path)?;
    let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)?;
    rustix::net::bind(&listener, &addr)?;
    rustix::net::listen(&listener, 0)?;
    let nonblocking = || {
        rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK,
            None,
        )
    };
    let pending = nonblocking()?;
    rustix::net::connect(&pending, &addr)?;
    // Proof that the queue is full now: one more would wait.
    match rustix::net::connect(&nonblocking()?, &addr) {
        Err(rustix::io::Errno::AGAIN) => Ok((listener, pending)),
        _ => Err(std::io::Error::other("the squatter's queue is not full")),
    }
}
