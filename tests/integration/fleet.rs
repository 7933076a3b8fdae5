//! A fleet on one machine: hosts, each a sandbox with its own socket directory, config, log and
//! demo daemon `web`; and the guide's plain `ssh` + `xargs -P` loop (docs/operators.md, "A
//! fleet") run as written against them. The Ansible way is in `ansible.rs`.

use crate::config;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use tests::{bins, run, Daemon, Run, Sandbox};

/// The daemon's name on every host, as a fleet has it.
pub const TARGET: &str = "web";

/// One host of the fleet: a sandbox with its socket directory, config, log and daemon.
pub struct Host {
    /// First, so that it is dropped (killed) before its directory is removed: a live daemon
    /// binds its socket again in a removed directory, and the directory would stay behind.
    pub daemon: Option<Daemon>,
    pub name: String,
    pub sb: Sandbox,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Host {
    /// Writes the daemon's config with `message`: a change a reload applies.
    pub fn write_config(&self, message: &str) {
        std::fs::write(&self.config, config(&self.log, 20, message)).unwrap();
    }

    /// Writes a config the daemon refuses (line 4 is not TOML).
    pub fn break_config(&self) {
        std::fs::write(
            &self.config,
            format!("{}this is not toml\n", config(&self.log, 20, "broken")),
        )
        .unwrap();
    }

    pub fn status(&self) -> Value {
        self.sb
            .ctl(&["--json", "status", TARGET])
            .expect_code(0)
            .json()["result"]
            .clone()
    }

    /// The configuration generation the daemon reports now.
    pub fn generation(&self) -> u64 {
        self.status()["config_generation"]
            .as_u64()
            .expect("config_generation")
    }

    /// Kills the daemon, leaving its socket behind, stale, as a crash does.
    /// Stops the daemon as a service manager does (SIGTERM): it removes its socket.
    pub fn stop(&mut self) {
        let mut daemon = self.daemon.take().expect("a running daemon");
        daemon.signal(rustix::process::Signal::TERM);
        daemon.wait_exit();
    }

    /// Kills the daemon (SIGKILL): it leaves its socket and lock file.
    pub fn crash(&mut self) {
        let mut daemon = self.daemon.take().expect("a running daemon");
        daemon.signal(rustix::process::Signal::KILL);
        daemon.wait_exit();
    }
}

/// Starts hosts `h1`..`hN`, each with its daemon running config message "v1".
pub fn start_hosts(n: usize) -> Vec<Host> {
    (1..=n)
        .map(|i| {
            let sb = Sandbox::new();
            let log = sb.path("web.log");
            let config = sb.write_config("web.toml", &config(&log, 20, "v1"));
            let daemon = sb.start_daemon(TARGET, &config, &[]);
            Host {
                name: format!("h{i}"),
                sb,
                config,
                log,
                daemon: Some(daemon),
            }
        })
        .collect()
}

/// The `sh` block of the guide's "With ssh and xargs", exactly as the guide shows it.
fn guide_loop() -> String {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operators.md"))
            .unwrap();
    let section = guide
        .split_once("### With ssh and xargs")
        .expect("the guide has the section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("an sh block in the section")
        .1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_owned()
}

/// A directory for running the guide's loop: `hosts.txt`, and a `bin` directory put first in
/// PATH with the real `ctl`, an `ssh` that runs its command here in the named host's socket
/// directory (255 for a host it does not know, as ssh does), and a `sleep` that only notes its
/// argument (the guide's pause between batches).
struct Shell {
    sb: Sandbox,
}

impl Shell {
    fn new(hosts: &[Host]) -> Shell {
        let sb = Sandbox::new();
        let bin = sb.path("bin");
        let known = sb.path("known-hosts");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&known).unwrap();
        for host in hosts {
            std::fs::write(
                known.join(&host.name),
                host.sb.socket_dir().to_str().unwrap(),
            )
            .unwrap();
        }
        std::os::unix::fs::symlink(&bins().ctl, bin.join("ctl")).unwrap();
        let script = |name: &str, text: String| {
            let path = bin.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "ssh",
            format!(
                r#"#!/bin/sh
# ssh HOST COMMAND..., options skipped; runs COMMAND with the host's CTL_SOCKET_DIR.
while [ $# -gt 0 ]; do
  case "$1" in
    -o) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
host=$1; shift
if [ ! -f "{known}/$host" ]; then
  echo "ssh: Could not resolve hostname $host: Name or service not known" >&2
  exit 255
fi
CTL_SOCKET_DIR=$(cat "{known}/$host") exec sh -c "$*"
"#,
                known = known.display()
            ),
        );
        script(
            "sleep",
            format!("#!/bin/sh\necho \"$*\" >> {}\n", sb.path("slept").display()),
        );
        Shell { sb }
    }

    fn hosts_txt(&self, hosts: &[&str]) {
        let mut text = hosts.join("\n");
        text.push('\n');
        std::fs::write(self.sb.path("hosts.txt"), text).unwrap();
    }

    /// Runs the guide's loop with `sh` in this directory.
    fn run_loop(&self) -> Run {
        let path = format!(
            "{}:{}",
            self.sb.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        run(Command::new("sh")
            .arg("-c")
            .arg(guide_loop())
            .current_dir(self.sb.dir.path())
            .env("PATH", path))
    }

    /// `(host, code, message)` of each line of `file`, sorted by host.
    fn results(&self, file: &str) -> Vec<(String, i32, String)> {
        let text = std::fs::read_to_string(self.sb.path(file)).unwrap_or_default();
        let mut lines: Vec<(String, i32, String)> = text
            .lines()
            .map(|line| {
                let mut parts = line.splitn(3, ' ');
                let host = parts.next().unwrap().to_owned();
                let code = parts
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("no code in {line:?} of {file}"));
                (host, code, parts.next().unwrap_or_default().to_owned())
            })
            .collect();
        lines.sort();
        lines
    }

    fn codes(&self, file: &str) -> Vec<(String, i32)> {
        self.results(file)
            .into_iter()
            .map(|(host, code, _)| (host, code))
            .collect()
    }

    fn slept(&self) -> String {
        std::fs::read_to_string(self.sb.path("slept")).unwrap_or_default()
    }
}

fn codes(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(h, c)| (h.to_string(), *c)).collect()
}

#[test]
fn the_guides_ssh_xargs_loop_keeps_exit_codes_and_reloads_only_after_every_check_passed() {
    let hosts = start_hosts(11);
    for host in &hosts {
        host.write_config("v2");
    }
    hosts[2].break_config();
    let shell = Shell::new(&hosts);
    // First, a host ssh cannot reach: its 255 must not stop xargs from starting the hosts
    // after the first ten.
    let mut names = vec!["h99".to_owned()];
    names.extend(hosts.iter().map(|h| h.name.clone()));
    shell.hosts_txt(&names.iter().map(String::as_str).collect::<Vec<_>>());

    let ran = shell.run_loop();
    assert_eq!(ran.code, Some(0), "{ran}");
    let mut expected: Vec<(&str, i32)> = names.iter().map(|n| (n.as_str(), 0)).collect();
    expected[0].1 = 255;
    expected[3].1 = 1;
    let mut expected = codes(&expected);
    expected.sort();
    assert_eq!(
        shell.codes("check.txt"),
        expected,
        "every host checked once: {ran}"
    );
    let results = shell.results("check.txt");
    let refused = results.iter().find(|(host, _, _)| host == "h3").unwrap();
    assert!(
        refused.2.contains("refused") && refused.2.contains("line 4"),
        "the message comes back with the code: {refused:?}"
    );
    assert!(
        ran.stdout.contains("h3 1 ") && ran.stdout.contains("h99 255"),
        "the failures are listed: {ran}"
    );
    assert!(
        shell.results("reload.txt").is_empty(),
        "no reload after a failed check"
    );
    for host in &hosts {
        assert_eq!(host.generation(), 1, "{}", host.name);
    }

    // Fixed, and the unreachable host gone: every host reloads, ten, a pause, then one.
    hosts[2].write_config("v2");
    names.remove(0);
    shell.hosts_txt(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let ran = shell.run_loop();
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(ran.stdout.is_empty(), "no host failed: {ran}");
    let mut expected = codes(&names.iter().map(|n| (n.as_str(), 0)).collect::<Vec<_>>());
    expected.sort();
    assert_eq!(shell.codes("reload.txt"), expected);
    assert_eq!(
        shell.slept(),
        "60\n60\n",
        "a pause after each of the two batches"
    );
    for host in &hosts {
        assert_eq!(host.generation(), 2, "{}", host.name);
    }
}
