//! The Ansible collection in `contrib/ansible` run by the real `ansible-playbook` against a fleet
//! of real demo daemons on this machine: each "host" of the inventory is `ansible_connection:
//! local` with a socket directory, config and daemon of its own. Results are read from ansible's
//! own result documents (through `tests/ansible/callback/ctl_events.py`, one JSON line per run)
//! and from the daemons' real state (`ctl status`).
//!
//! `ansible-playbook` comes from the virtualenv `.ci/install-ansible` makes
//! (`target/ansible-venv`), or from `$CTL_ANSIBLE_PLAYBOOK`; without it these tests are skipped,
//! except under CI, where they fail.

use crate::config;
use crate::fleet::{start_hosts, Host, TARGET};
use serde_json::{json, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tests::{bins, run_within, wait_for, Run, Sandbox, WAIT};

/// Longest one ansible command may take; past it, it is killed with its process group.
const ANSIBLE_LIMIT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_owned()
}

/// The directory holding `ansible-playbook` (and `ansible-galaxy`, `ansible-doc`, `python`),
/// or `None` after printing why the test is skipped. Under CI a missing ansible fails.
#[track_caller]
fn require_ansible() -> Option<PathBuf> {
    let playbook = std::env::var_os("CTL_ANSIBLE_PLAYBOOK")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/ansible-venv/bin/ansible-playbook"));
    if playbook.is_file() {
        return Some(playbook.parent().expect("a file has a parent").to_owned());
    }
    let at = std::panic::Location::caller();
    assert!(
        std::env::var_os("CI").is_none(),
        "{at}: no ansible-playbook at {}: `bash .ci/install-ansible` installs it, and CI must run this test",
        playbook.display()
    );
    eprintln!(
        "skipped ({at}): no ansible-playbook at {} (`bash .ci/install-ansible`, or set CTL_ANSIBLE_PLAYBOOK)",
        playbook.display()
    );
    None
}

/// A fleet of hosts `h1`..`hN`, each with its daemon `web`, and a private place for ansible's
/// own files (home, temp, the installed collection, the inventory).
struct Fleet {
    bin: PathBuf,
    ansible: Sandbox,
    hosts: Vec<Host>,
}

impl Fleet {
    fn new(bin: PathBuf, n: usize) -> Fleet {
        let hosts = start_hosts(n);
        let fleet = Fleet {
            bin,
            ansible: Sandbox::new(),
            hosts,
        };
        fleet.install_collection();
        fleet.write_inventory();
        fleet
    }

    fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    fn host_mut(&mut self, name: &str) -> &mut Host {
        self.hosts
            .iter_mut()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    fn generations(&self) -> Vec<(String, u64)> {
        self.hosts
            .iter()
            .map(|h| (h.name.clone(), h.generation()))
            .collect()
    }

    fn collections(&self) -> PathBuf {
        self.ansible.path("collections")
    }

    /// Builds the collection from `contrib/ansible` and installs it into this fleet's own
    /// collections path, with the commands of the collection's README; nothing global.
    fn install_collection(&self) {
        let source = repo().join("contrib/ansible");
        self.ansible_cmd(
            "ansible-galaxy",
            &[
                "collection",
                "build",
                "--output-path",
                "dist",
                source.to_str().unwrap(),
            ],
        )
        .expect_code(0);
        self.ansible_cmd(
            "ansible-galaxy",
            &[
                "collection",
                "install",
                "-p",
                "collections",
                "dist/ctl-fleet-0.1.0.tar.gz",
            ],
        )
        .expect_code(0);
        assert!(
            self.collections()
                .join("ansible_collections/ctl/fleet/plugins/modules/ctl.py")
                .is_file(),
            "ansible-galaxy installed the module"
        );
    }

    /// The inventory: every host local, with its own socket directory and log, one `ctl`. The
    /// daemon's name is given on the command line (`-e ctl_target=web`), as the guide does.
    fn write_inventory(&self) {
        let hosts: serde_json::Map<String, Value> = self
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    json!({
                        "ctl_socket_dir": h.sb.socket_dir(),
                        "ctl_log": h.log,
                    }),
                )
            })
            .collect();
        let inventory = json!({"all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "ctl_path": bins().ctl,
            },
            "hosts": hosts,
        }});
        // JSON is YAML: the yaml inventory plugin reads it.
        std::fs::write(self.inventory(), inventory.to_string()).unwrap();
    }

    fn inventory(&self) -> PathBuf {
        self.ansible.path("inventory.yml")
    }

    /// `TOOL ARGS` from the ansible virtualenv, with ansible's files in this fleet's sandbox
    /// and no ANSIBLE_* setting inherited from whoever runs the tests.
    fn ansible_cmd(&self, tool: &str, args: &[&str]) -> Run {
        let home = self.ansible.path("home");
        let config = self.ansible.path("ansible.cfg");
        if !config.exists() {
            std::fs::write(&config, "# empty: ansible's defaults\n").unwrap();
        }
        let mut cmd = Command::new(self.bin.join(tool));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ANSIBLE_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(args)
            .current_dir(self.ansible.dir.path())
            .env("ANSIBLE_CONFIG", &config)
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", home.join("remote-tmp"))
            .env("ANSIBLE_COLLECTIONS_PATH", self.collections())
            .env(
                "ANSIBLE_CALLBACK_PLUGINS",
                repo().join("tests/ansible/callback"),
            )
            .env("ANSIBLE_STDOUT_CALLBACK", "ctl_events")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            // Modules go to python on stdin, not through files in a temp directory: faster.
            .env("ANSIBLE_PIPELINING", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // ansible refuses to start unless the locale's encoding is UTF-8.
            .env("LC_ALL", "C.UTF-8");
        run_within(&mut cmd, ANSIBLE_LIMIT)
    }

    /// `ansible-playbook -i INVENTORY PLAYBOOK ARGS`, its results parsed.
    fn play(&self, playbook: &str, args: &[&str]) -> Play {
        let inventory = self.inventory();
        let target = format!("ctl_target={TARGET}");
        let mut all = vec!["-i", inventory.to_str().unwrap(), playbook, "-e", &target];
        all.extend_from_slice(args);
        let ran = self.ansible_cmd("ansible-playbook", &all);
        let doc = ran
            .stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<Value>(line).ok())
            .unwrap_or_else(|| panic!("no JSON document from ansible-playbook: {ran}"));
        Play { ran, doc }
    }

    /// The rolling reload with batches of two and no pause, unless `args` say otherwise.
    fn rolling_reload(&self, args: &[&str]) -> Play {
        let mut all = vec!["-e", "ctl_serial=2", "-e", "ctl_batch_pause=0"];
        all.extend_from_slice(args);
        self.play("ctl.fleet.rolling_reload", &all)
    }
}

/// One `ansible-playbook` run and its results, from the `ctl_events` callback.
struct Play {
    ran: Run,
    doc: Value,
}

impl fmt::Display for Play {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ran.fmt(f)
    }
}

impl Play {
    fn events(&self) -> &[Value] {
        self.doc["events"].as_array().expect("events")
    }

    /// The hosts `task` ran on, sorted (hosts of one batch run in parallel).
    fn hosts_of(&self, task: &str) -> Vec<&str> {
        let mut hosts: Vec<&str> = self
            .events()
            .iter()
            .filter(|e| e["task"] == task)
            .map(|e| e["host"].as_str().unwrap())
            .collect();
        hosts.sort_unstable();
        hosts
    }

    /// The one event of `task` on `host`: its status (`ok`, `changed`, `failed`, `ignored`,
    /// `skipped`) and ansible's result.
    #[track_caller]
    fn event(&self, task: &str, host: &str) -> (&str, &Value) {
        let found: Vec<&Value> = self
            .events()
            .iter()
            .filter(|e| e["task"] == task && e["host"] == host)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "task {task:?} on {host}: {} results\n{self}",
            found.len()
        );
        (found[0]["status"].as_str().unwrap(), &found[0]["result"])
    }

    #[track_caller]
    fn status(&self, task: &str, host: &str) -> &str {
        self.event(task, host).0
    }

    #[track_caller]
    fn result(&self, task: &str, host: &str) -> &Value {
        self.event(task, host).1
    }

    #[track_caller]
    fn expect_code(&self, code: i32) -> &Play {
        assert_eq!(self.ran.code, Some(code), "{self}");
        self
    }

    /// The rolling reload's closing line: hosts by outcome.
    #[track_caller]
    fn summary(&self) -> &str {
        self.result("Rollout summary", "localhost")["msg"]
            .as_str()
            .unwrap_or_else(|| panic!("no summary: {self}"))
    }

    /// `(host, changed count, failures)` from ansible's stats.
    fn stats(&self) -> Vec<(String, u64, u64)> {
        let stats = self.doc["stats"].as_object().expect("stats");
        stats
            .iter()
            .map(|(host, s)| {
                (
                    host.clone(),
                    s["changed"].as_u64().unwrap(),
                    s["failures"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

fn gens(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(h, g)| (h.to_string(), *g)).collect()
}

#[test]
fn the_module_documents_exactly_its_arguments_and_ansible_doc_reads_it() {
    let Some(bin) = require_ansible() else { return };
    let fleet = Fleet::new(bin, 1);
    let module = repo().join("contrib/ansible/plugins/modules/ctl.py");
    fleet
        .ansible_cmd(
            "python",
            &[
                repo()
                    .join("tests/ansible/check_module_doc.py")
                    .to_str()
                    .unwrap(),
                module.to_str().unwrap(),
                "ctl.fleet.ctl",
            ],
        )
        .expect_code(0);
    // As the collection's README runs it, then as JSON to look inside.
    let text = fleet
        .ansible_cmd("ansible-doc", &["ctl.fleet.ctl"])
        .expect_code(0);
    assert!(
        text.stdout.contains("ctl.fleet.ctl") && text.stdout.contains("EXAMPLES"),
        "{text}"
    );
    let doc = fleet
        .ansible_cmd("ansible-doc", &["--json", "ctl.fleet.ctl"])
        .expect_code(0);
    let doc: Value = serde_json::from_str(&doc.stdout).unwrap_or_else(|e| panic!("{e}: {doc}"));
    let options = &doc["ctl.fleet.ctl"]["doc"]["options"];
    assert_eq!(
        options["operation"]["choices"],
        json!([
            "status",
            "check",
            "reload",
            "rotate",
            "drain",
            "resume",
            "call",
            "counters",
            "log-level",
            "describe",
            "hello",
            "doctor"
        ]),
        "{doc:#}"
    );
    assert_eq!(
        doc["ctl.fleet.ctl"]["doc"]["attributes"]["check_mode"]["support"],
        "full"
    );
}

#[test]
fn the_module_operation_by_operation() {
    let Some(bin) = require_ansible() else { return };
    let fleet = Fleet::new(bin, 1);
    let host = fleet.host("h1");
    let config = host
        .sb
        .write_config("old.toml", &config(&host.sb.path("old.log"), 20, "old"));
    let _old = host
        .sb
        .start_daemon("old", &config, &["--disable", "reload"]);
    let watched_log = host.sb.path("watched.log");
    let watched_config = host
        .sb
        .write_config("watched.toml", &crate::config(&watched_log, 20, "watched"));
    let _watched = host
        .sb
        .start_daemon("watched", &watched_config, &["--watch-log-rotation"]);
    let watched_log_var = format!("ctl_watched_log={}", watched_log.display());
    // Two trees for doctor: one whose logrotate stanza signals nothing dangerous, one whose
    // stanza would kill a running process without a SIGHUP handler (a copy of sleep).
    let sleeper_bin = host.sb.path("docsleeper");
    std::fs::copy("/bin/sleep", &sleeper_bin).unwrap();
    let mut sleeper = std::process::Command::new(&sleeper_bin)
        .arg("600")
        .spawn()
        .unwrap();
    let tree = |name: &str, postrotate: &str| {
        let root = host.sb.path(name);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let stanza =
            format!("/var/log/x.log {{\n    postrotate\n        {postrotate}\n    endscript\n}}\n");
        std::fs::write(root.join("etc/logrotate.conf"), stanza).unwrap();
        format!("ctl_{name}={}", root.display())
    };
    let clean = tree("doctor_clean", "/usr/bin/ctl rotate x");
    let deadly = tree("doctor_deadly", "pkill -HUP -x docsleeper");
    let play = fleet.play(
        repo().join("tests/ansible/module.yml").to_str().unwrap(),
        &[
            "-e",
            "ctl_target_without_check=old",
            "-e",
            "ctl_target_watched=watched",
            "-e",
            &watched_log_var,
            "-e",
            &clean,
            "-e",
            &deadly,
        ],
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    play.expect_code(0);
    let h = "h1";

    // status: the reply, not changed.
    assert_eq!(play.status("status", h), "ok");
    let status = play.result("status", h);
    assert_eq!(status["rc"], 0);
    assert_eq!(status["operation"], "status");
    assert_eq!(status["result"]["config_generation"], 1);
    assert_eq!(status["daemon"]["name"], TARGET);
    assert_eq!(
        status["socket"],
        host.sb.socket_dir().join("web.sock").display().to_string()
    );

    // counters: the list, never a change, in check mode too; a prefix selects.
    assert_eq!(play.status("counters", h), "ok");
    let counters = play.result("counters", h)["result"]["counters"]
        .as_array()
        .expect("a list of counters");
    let lines = counters
        .iter()
        .find(|c| c["name"] == "demo.lines_written")
        .unwrap_or_else(|| panic!("demo.lines_written in {counters:?}"));
    assert_eq!(lines["kind"], "counter");
    assert!(lines["value"].as_u64() > Some(0), "{lines}");
    assert!(counters.iter().any(|c| c["name"] == "ctl.reloads.ok"));
    assert_eq!(play.status("counters with a prefix", h), "ok");
    let names: Vec<&str> = play.result("counters with a prefix", h)["result"]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"demo.lines_written") && names.iter().all(|n| n.starts_with("demo.")),
        "{names:?}"
    );

    // hello and describe: the daemon's replies, never a change (in check mode too).
    assert_eq!(play.status("hello", h), "ok");
    let hello = &play.result("hello", h)["result"];
    assert_eq!(hello["name"], TARGET, "{hello:#}");
    assert!(
        hello["operations"]
            .as_array()
            .unwrap()
            .contains(&json!("set-message")),
        "{hello:#}"
    );
    // doctor: ok for a clean tree; a line that would kill fails the host, naming file and
    // line; never changed, and nothing sent (the sleeper was alive to the end of the play).
    assert_eq!(play.status("doctor of a clean tree", h), "ok");
    assert_eq!(play.result("doctor of a clean tree", h)["rc"], 0);
    assert_eq!(
        play.status("doctor of a tree with a line that would kill", h),
        "ignored",
        "failed, and ignored by the play"
    );
    let deadly = play.result("doctor of a tree with a line that would kill", h);
    assert_eq!(deadly["rc"], 1, "{deadly:#}");
    assert_eq!(deadly["changed"], false, "{deadly:#}");
    let msg = deadly["msg"].as_str().unwrap();
    assert!(
        msg.contains("logrotate.conf:3") && msg.contains("docsleeper"),
        "{msg}"
    );
    assert_eq!(
        deadly["result"]["findings"][0]["verdict"], "would_kill",
        "{deadly:#}"
    );
    assert_eq!(play.status("describe", h), "ok");
    let described = play.result("describe", h)["result"]["operations"]
        .as_array()
        .expect("a list of operations");
    let set = described
        .iter()
        .find(|op| op["name"] == "set-message")
        .unwrap_or_else(|| panic!("set-message in {described:?}"));
    assert_eq!(set["access"], "operate");

    // log-level: read, then set only when it differs; check mode predicts and sets nothing.
    assert_eq!(play.status("log-level, read", h), "ok");
    assert_eq!(
        play.result("log-level, read", h)["result"]["filter"],
        "info"
    );
    let task = "log-level in check mode, another filter";
    assert_eq!(
        play.status(task, h),
        "changed",
        "{:#}",
        play.result(task, h)
    );
    assert_eq!(
        play.result("log-level after the check mode", h)["result"]["filter"],
        "info",
        "check mode set nothing"
    );
    assert_eq!(play.status("log-level after the check mode", h), "ok");
    let set = play.result("log-level, set", h);
    assert_eq!(play.status("log-level, set", h), "changed", "{set:#}");
    assert_eq!(set["result"]["previous"], "info", "{set:#}");
    let in_effect = set["result"]["filter"].as_str().unwrap().to_owned();
    assert!(in_effect.contains("demo_daemon=debug"), "{set:#}");
    // The daemon spells it its own way: the same filter given again is no change.
    let again = play.result("log-level, set again", h);
    assert_eq!(play.status("log-level, set again", h), "ok", "{again:#}");
    assert_eq!(again["result"]["filter"], in_effect.as_str(), "{again:#}");
    let task = "log-level in check mode, the same filter spelled otherwise";
    assert_eq!(play.status(task, h), "ok", "{:#}", play.result(task, h));
    let refused = play.result("log-level, a filter the daemon refuses", h);
    assert_eq!(
        play.status("log-level, a filter the daemon refuses", h),
        "ignored",
        "{refused:#}"
    );
    assert_eq!(refused["rc"], 1, "{refused:#}");
    assert!(
        refused["msg"]
            .as_str()
            .unwrap()
            .contains("log filter refused"),
        "{refused:#}"
    );
    assert_eq!(play.status("log-level, back to info", h), "changed");

    // rotate: changed only when a file was reopened as another one. Check mode predicts the
    // same from the daemon's open files: no change before the rename; after it, a change, and
    // it reopens nothing: the real rotate after it still finds the renamed file open.
    assert_eq!(play.status("rotate, nothing renamed", h), "ok");
    let task = "rotate in check mode, nothing renamed";
    assert_eq!(play.status(task, h), "ok", "{:#}", play.result(task, h));
    assert!(
        play.result(task, h)["msg"]
            .as_str()
            .unwrap()
            .ends_with("it would change nothing"),
        "{:#}",
        play.result(task, h)
    );
    let check = play.result("rotate in check mode, after the rename", h);
    assert_eq!(
        play.status("rotate in check mode, after the rename", h),
        "changed"
    );
    assert_eq!(check["operation"], "status", "{check:#}");
    let rotated = play.result("rotate, after the rename", h);
    assert_eq!(play.status("rotate, after the rename", h), "changed");
    let file = &rotated["result"]["files"][0];
    assert_ne!(file["old"], file["new"], "{rotated:#}");
    assert_eq!(play.status("rotate again", h), "ok");

    // A daemon that reopened its renamed log by itself: the rotate reports that reopen (old
    // and new file) but made no change, and check mode says the same.
    let task = "rotate in check mode, a daemon that reopened by itself";
    assert_eq!(play.status(task, h), "ok", "{:#}", play.result(task, h));
    let task = "rotate, a daemon that reopened by itself";
    assert_eq!(play.status(task, h), "ok", "{:#}", play.result(task, h));
    let file = &play.result(task, h)["result"]["files"][0];
    assert_ne!(file["old"], file["new"], "the reopen is reported: {file:#}");

    // call: a read command is not a change and runs in check mode too; an operate command is,
    // and does not run in check mode.
    assert_eq!(play.status("call a read command", h), "ok");
    assert!(play.result("call a read command", h)["result"]["lines"].as_u64() > Some(0));
    assert_eq!(play.status("call a read command in check mode", h), "ok");
    assert!(play.result("call a read command in check mode", h)["result"]["lines"].is_u64());
    assert_eq!(play.status("call an operate command", h), "changed");
    assert_eq!(
        play.result("call an operate command", h)["result"]["message"],
        "set by ansible"
    );
    assert_eq!(
        play.result("call an operate command", h)["said_changed"],
        true
    );
    // The daemon says the same text again changed nothing: ok.
    let task = "call an operate command again, the same text";
    assert_eq!(play.status(task, h), "ok", "{:#}", play.result(task, h));
    assert_eq!(play.result(task, h)["said_changed"], false);
    assert!(play.result("call a read command", h)["said_changed"].is_null());
    assert_eq!(
        play.status("call an operate command in check mode", h),
        "changed"
    );
    assert!(play.result("call an operate command in check mode", h)["result"].is_null());
    let unknown = play.result("call an unknown command", h);
    assert_eq!(play.status("call an unknown command", h), "ignored");
    assert_eq!(unknown["rc"], 3, "{unknown:#}");
    assert_eq!(unknown["error"]["kind"], "unsupported", "{unknown:#}");
    // In check mode, what the real call would meet: unsupported, no daemon, or nothing to do.
    let task = "call an unknown command in check mode";
    let unknown = play.result(task, h);
    assert_eq!(play.status(task, h), "ignored", "{unknown:#}");
    assert_eq!(unknown["rc"], 3, "{unknown:#}");
    assert_eq!(unknown["changed"], false, "{unknown:#}");
    assert_eq!(unknown["error"]["kind"], "unsupported", "{unknown:#}");
    assert_eq!(
        unknown["error"]["detail"]["supported"],
        json!(["set-message", "stats"]),
        "{unknown:#}"
    );
    let task = "call in check mode, a daemon that is not there";
    let missing = play.result(task, h);
    assert_eq!(play.status(task, h), "ignored", "{missing:#}");
    assert_eq!(missing["rc"], 69, "{missing:#}");
    assert_eq!(missing["changed"], false, "{missing:#}");
    assert_eq!(missing["error"]["kind"], "no_daemon", "{missing:#}");
    let task = "call in check mode, a daemon that is not there, missing_ok";
    let missing = play.result(task, h);
    assert_eq!(play.status(task, h), "ok", "{missing:#}");
    assert!(
        missing["missing"]
            .as_str()
            .unwrap()
            .contains("no daemon at"),
        "{missing:#}"
    );
    let wrong = play.result("call with an argument of the wrong type", h);
    assert_eq!(wrong["rc"], 2, "{wrong:#}");
    assert!(
        wrong["msg"].as_str().unwrap().contains("argument `text`"),
        "the message names the field: {wrong:#}"
    );

    // drain and resume: changed when the state moves; check mode only predicts.
    assert_eq!(play.status("drain in check mode", h), "changed");
    assert_eq!(
        play.result("status after the drain in check mode", h)["result"]["draining"],
        false
    );
    assert_eq!(play.status("drain", h), "changed");
    assert_eq!(play.result("drain", h)["result"]["completed"], true);
    assert_eq!(play.status("drain again", h), "ok");
    assert_eq!(play.status("resume in check mode", h), "changed");
    assert_eq!(
        play.result("status after the resume in check mode", h)["result"]["draining"],
        true
    );
    assert_eq!(play.status("resume", h), "changed");
    assert_eq!(play.status("resume again", h), "ok");

    // Check mode cannot tell what a reload would do on a daemon without check: skipped.
    let task = "reload in check mode, a daemon without check";
    assert_eq!(play.status(task, h), "skipped", "{play}");
    assert_eq!(play.result(task, h)["error"]["kind"], "unsupported");
    let task = "reload, a daemon without reload";
    assert_eq!(play.status(task, h), "ignored");
    assert_eq!(play.result(task, h)["rc"], 3);

    // A daemon that is not there: ok with missing_ok (and why), failed with 69 without.
    for task in [
        "status of a daemon that is not there, missing_ok",
        "reload of a daemon that is not there, missing_ok",
    ] {
        assert_eq!(play.status(task, h), "ok", "{task}");
        let r = play.result(task, h);
        assert!(
            r["missing"].as_str().unwrap().contains("no daemon at"),
            "{r:#}"
        );
    }
    let missing = play.result("status of a daemon that is not there", h);
    assert_eq!(
        play.status("status of a daemon that is not there", h),
        "ignored"
    );
    assert_eq!(missing["rc"], 69);
    assert_eq!(missing["error"]["kind"], "no_daemon");

    // What ctl cannot even start on fails with its message.
    let bad = play.result("a timeout ctl cannot read", h);
    assert_eq!(bad["rc"], 2, "{bad:#}");
    assert_eq!(bad["error"]["kind"], "usage");
    assert!(bad["msg"].as_str().unwrap().contains("soon"), "{bad:#}");
    let bad = play.result("a ctl_path that is not there", h);
    assert_eq!(play.status("a ctl_path that is not there", h), "ignored");
    assert!(
        bad["msg"].as_str().unwrap().contains("/nonexistent/ctl"),
        "{bad:#}"
    );
    let bad = play.result("call without a command", h);
    assert_eq!(play.status("call without a command", h), "ignored");
    assert!(bad["msg"].as_str().unwrap().contains("command"), "{bad:#}");

    // The daemon itself: the message the real call set, not the check-mode one; serving.
    let status = host.status();
    assert_eq!(status["values"]["message"], "set by ansible", "{status:#}");
    assert_eq!(status["draining"], false);
    assert_eq!(status["config_generation"], 1);
}

#[test]
fn a_second_run_of_a_play_with_a_state_changing_call_changes_nothing() {
    let Some(bin) = require_ansible() else { return };
    let fleet = Fleet::new(bin, 2);
    let playbook = repo().join("tests/ansible/converge.yml");
    let playbook = playbook.to_str().unwrap();

    let first = fleet.play(playbook, &[]);
    first.expect_code(0);
    for h in ["h1", "h2"] {
        for task in ["set the message", "debug logging"] {
            assert_eq!(first.status(task, h), "changed", "{task} on {h}: {first}");
        }
        assert_eq!(first.status("read the counters", h), "ok", "{first}");
        let status = fleet.host(h).status();
        assert_eq!(status["values"]["message"], "converged", "{status:#}");
    }

    let second = fleet.play(playbook, &[]);
    second.expect_code(0);
    for h in ["h1", "h2"] {
        for task in [
            "check the configuration",
            "reload",
            "set the message",
            "read the counters",
            "debug logging",
            "rotate",
            "resume",
            "describe",
            "hello",
        ] {
            assert_eq!(
                second.status(task, h),
                "ok",
                "{task} on {h}: {:#}",
                second.result(task, h)
            );
        }
        assert_eq!(second.result("set the message", h)["said_changed"], false);
    }
    assert!(
        second.stats().iter().all(|(_, changed, _)| *changed == 0),
        "the second run changed nothing: {second}"
    );
}

#[test]
fn an_unchanged_config_is_ok_a_changed_one_reloads_and_a_second_run_changes_nothing() {
    let Some(bin) = require_ansible() else { return };
    let fleet = Fleet::new(bin, 4);

    let play = fleet.rolling_reload(&[]);
    play.expect_code(0);
    for h in ["h1", "h2", "h3", "h4"] {
        assert_eq!(play.status("ctl check", h), "ok");
        assert_eq!(
            play.status("ctl reload", h),
            "ok",
            "nothing to change on {h}"
        );
        assert_eq!(play.result("ctl reload", h)["result"]["unchanged"], true);
    }
    assert!(
        play.stats().iter().all(|(_, changed, _)| *changed == 0),
        "{play}"
    );
    assert_eq!(
        fleet.generations(),
        gens(&[("h1", 1), ("h2", 1), ("h3", 1), ("h4", 1)])
    );
    assert_eq!(
        play.summary(),
        "reloaded: none; unchanged: h1, h2, h3, h4; stopped: none; failed: none; \
         not reached: none"
    );

    for host in &fleet.hosts {
        host.write_config("v2");
    }
    let play = fleet.rolling_reload(&[]);
    play.expect_code(0);
    assert!(
        play.summary()
            .starts_with("reloaded: h1, h2, h3, h4; unchanged: none;"),
        "{play}"
    );
    for h in ["h1", "h2", "h3", "h4"] {
        assert_eq!(play.status("ctl reload", h), "changed", "{play}");
        let r = play.result("ctl reload", h);
        assert_eq!(r["result"]["generation"], 2, "{r:#}");
        assert_eq!(r["result"]["summary"], "message \"v1\" -> \"v2\"");
    }
    assert_eq!(
        fleet.generations(),
        gens(&[("h1", 2), ("h2", 2), ("h3", 2), ("h4", 2)])
    );

    let play = fleet.rolling_reload(&[]);
    play.expect_code(0);
    assert_eq!(play.hosts_of("ctl reload"), ["h1", "h2", "h3", "h4"]);
    assert!(
        play.stats().iter().all(|(_, changed, _)| *changed == 0),
        "{play}"
    );
    assert_eq!(
        fleet.generations(),
        gens(&[("h1", 2), ("h2", 2), ("h3", 2), ("h4", 2)])
    );
}

#[test]
fn check_mode_reloads_nothing_and_says_what_would_change() {
    let Some(bin) = require_ansible() else { return };
    let fleet = Fleet::new(bin, 3);
    fleet.host("h1").write_config("v2");
    fleet.host("h3").write_config("v2");

    // A pause of two minutes between batches would be two minutes of watching nothing.
    let play = fleet.rolling_reload(&["--check", "-e", "ctl_batch_pause=120"]);
    play.expect_code(0);
    assert_eq!(
        play.summary(),
        "would reload: h1, h3; unchanged: h2; stopped: none; failed: none; not reached: none"
    );
    let pauses: Vec<&str> = play
        .events()
        .iter()
        .filter(|e| e["task"] == "Pause before the next batch")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert!(
        !pauses.is_empty() && pauses.iter().all(|s| *s == "skipped"),
        "no pause in check mode: {pauses:?}\n{play}"
    );
    for host in &fleet.hosts {
        let status = host.status();
        assert_eq!(status["config_generation"], 1, "{status:#}");
        assert!(status["last_reload"].is_null(), "no reload ran: {status:#}");
    }
    for (h, would) in [("h1", "changed"), ("h2", "ok"), ("h3", "changed")] {
        assert_eq!(play.status("ctl reload", h), would, "{play}");
        let r = play.result("ctl reload", h);
        assert_eq!(r["operation"], "check", "{r:#}");
        assert_eq!(r["result"]["generation"], 1, "{r:#}");
    }

    // A refused config fails in check mode as the reload would, and still nothing reloads.
    fleet.host("h2").break_config();
    let play = fleet.rolling_reload(&["--check", "-e", "ctl_precheck=false"]);
    play.expect_code(2);
    assert_eq!(play.status("ctl reload", "h2"), "failed");
    assert_eq!(play.result("ctl reload", "h2")["rc"], 1);
    assert!(fleet
        .hosts
        .iter()
        .all(|h| h.status()["last_reload"].is_null()));
}

#[test]
fn a_refused_config_fails_its_batch_and_stops_the_rollout() {
    let Some(bin) = require_ansible() else { return };
    let fleet = Fleet::new(bin, 6);
    for host in &fleet.hosts {
        host.write_config("v2");
    }
    let broken = fleet.host("h3");
    broken.break_config();

    // Without the check first, the reload itself finds the refused config, in the second
    // batch (h3, h4); the pause runs after the first batch only.
    let play = fleet.rolling_reload(&["-e", "ctl_precheck=false", "-e", "ctl_batch_pause=1"]);
    play.expect_code(2);
    assert_eq!(
        play.hosts_of("ctl reload"),
        ["h1", "h2", "h3", "h4"],
        "{play}"
    );
    assert_eq!(play.status("ctl reload", "h1"), "changed");
    assert_eq!(play.status("ctl reload", "h2"), "changed");
    assert_eq!(play.status("ctl reload", "h4"), "changed");
    let (status, refused) = play.event("ctl reload", "h3");
    assert_eq!(status, "failed");
    assert_eq!(refused["rc"], 1, "{refused:#}");
    assert_eq!(refused["error"]["kind"], "failed", "{refused:#}");
    let msg = refused["msg"].as_str().unwrap();
    assert!(
        msg.contains(&broken.config.display().to_string()) && msg.contains("line 4"),
        "the message names the file and line: {msg}"
    );
    let paused = play
        .events()
        .iter()
        .filter(|e| e["task"] == "Pause before the next batch" && e["status"] == "ok")
        .count();
    assert_eq!(paused, 1, "after the first batch only: {play}");
    assert_eq!(
        fleet.generations(),
        gens(&[
            ("h1", 2),
            ("h2", 2),
            ("h3", 1),
            ("h4", 2),
            ("h5", 1),
            ("h6", 1)
        ]),
        "h5 and h6 keep their old configuration"
    );
    for h in ["h5", "h6"] {
        assert!(fleet.host(h).status()["last_reload"].is_null());
    }
    // The closing summary names the hosts never asked, and the run fails on them too.
    assert_eq!(
        play.summary(),
        "reloaded: h1, h2, h4; unchanged: none; stopped: none; failed: h3; not reached: h5, h6",
        "{play}"
    );
    let (status, failed) = play.event("Fail when a host failed or was not reached", "localhost");
    assert_eq!(status, "failed", "{play}");
    let msg = failed["msg"].as_str().unwrap();
    assert!(
        msg.contains("1 host(s) failed (h3: ctl reload web: ") && msg.contains("line 4"),
        "{msg}"
    );
    assert!(msg.contains("2 not reached (h5, h6)"), "{msg}");
}

#[test]
fn the_check_first_stops_a_refused_config_before_any_host_reloads() {
    let Some(bin) = require_ansible() else { return };
    let fleet = Fleet::new(bin, 4);
    for host in &fleet.hosts {
        host.write_config("v2");
    }
    fleet.host("h4").break_config();

    let play = fleet.rolling_reload(&[]);
    play.expect_code(2);
    assert_eq!(play.hosts_of("ctl check").len(), 4, "{play}");
    assert_eq!(play.status("ctl check", "h4"), "failed");
    let refused = play.result("ctl check", "h4");
    assert_eq!(refused["rc"], 1);
    assert!(
        refused["msg"].as_str().unwrap().contains("line 4"),
        "{refused:#}"
    );
    assert!(play.hosts_of("ctl reload").is_empty(), "{play}");
    for host in &fleet.hosts {
        assert!(host.status()["last_reload"].is_null(), "{}", host.name);
    }
    assert_eq!(
        play.summary(),
        "reloaded: none; unchanged: none; stopped: none; failed: h4; not reached: h1, h2, h3",
        "{play}"
    );
}

#[test]
fn a_rolling_reload_with_missing_ok_skips_a_stopped_daemon_and_fails_a_dead_one() {
    let Some(bin) = require_ansible() else { return };
    let mut fleet = Fleet::new(bin, 4);
    for host in &fleet.hosts {
        host.write_config("v2");
    }
    fleet.host_mut("h2").stop();

    // Without missing_ok a stopped daemon fails the check, and nothing reloads.
    let play = fleet.rolling_reload(&[]);
    play.expect_code(2);
    assert_eq!(play.result("ctl check", "h2")["state"], "stopped", "{play}");
    assert!(play.hosts_of("ctl reload").is_empty(), "{play}");
    assert_eq!(
        play.summary(),
        "reloaded: none; unchanged: none; stopped: none; failed: h2; not reached: h1, h3, h4",
        "{play}"
    );

    // With it the stopped host is skipped, named as such, and the others reload.
    let play = fleet.rolling_reload(&["-e", "ctl_missing_ok=true"]);
    play.expect_code(0);
    assert_eq!(play.status("ctl reload", "h2"), "ok", "{play}");
    assert_eq!(play.result("ctl reload", "h2")["state"], "stopped");
    assert_eq!(
        play.summary(),
        "reloaded: h1, h3, h4; unchanged: none; stopped: h2; failed: none; not reached: none",
        "{play}"
    );

    // A daemon that died fails its host even with missing_ok, and stops the run at the check.
    fleet.host_mut("h4").crash();
    let play = fleet.rolling_reload(&["-e", "ctl_missing_ok=true"]);
    play.expect_code(2);
    let (status, died) = play.event("ctl check", "h4");
    assert_eq!(status, "failed", "{play}");
    assert_eq!(died["state"], "died", "{died:#}");
    assert_eq!(died["rc"], 69, "{died:#}");
    assert!(play.hosts_of("ctl reload").is_empty(), "{play}");
    assert_eq!(
        play.summary(),
        "reloaded: none; unchanged: none; stopped: h2; failed: h4; not reached: h1, h3",
        "{play}"
    );
}

#[test]
fn fleet_rotate_skips_a_stopped_daemon_with_missing_ok_fails_a_dead_one_and_says_which() {
    let Some(bin) = require_ansible() else { return };
    let mut fleet = Fleet::new(bin, 4);
    fleet.host_mut("h2").stop();
    fleet.host_mut("h4").crash();
    for h in ["h1", "h3"] {
        let host = fleet.host(h);
        wait_for("a line in the log", WAIT, || {
            host.log.exists().then_some(())
        });
        std::fs::rename(&host.log, host.log.with_extension("log.1")).unwrap();
    }

    // The default, missing_ok: the stopped host is ok; the dead one fails the run.
    let play = fleet.play("ctl.fleet.rotate", &[]);
    play.expect_code(2);
    for h in ["h1", "h3"] {
        assert_eq!(play.status("ctl rotate", h), "changed", "{play}");
        assert_eq!(play.result("ctl rotate", h)["state"], "running", "{play}");
        wait_for("the daemon to write to the new log file", WAIT, || {
            fleet.host(h).log.exists().then_some(())
        });
    }
    assert_eq!(play.status("ctl rotate", "h2"), "ok");
    let missing = play.result("ctl rotate", "h2");
    assert!(
        missing["missing"]
            .as_str()
            .unwrap()
            .contains("no daemon at"),
        "{missing:#}"
    );
    assert_eq!(missing["state"], "stopped", "{missing:#}");
    let (status, died) = play.event("ctl rotate", "h4");
    assert_eq!(status, "failed", "{play}");
    assert_eq!(died["rc"], 69, "{died:#}");
    assert_eq!(died["state"], "died", "{died:#}");
    assert_eq!(died["error"]["kind"], "died", "{died:#}");

    let play = fleet.play("ctl.fleet.rotate", &["-e", "ctl_missing_ok=false"]);
    play.expect_code(2);
    assert_eq!(
        play.status("ctl rotate", "h1"),
        "ok",
        "nothing renamed since"
    );
    assert_eq!(play.status("ctl rotate", "h3"), "ok");
    let (status, failed) = play.event("ctl rotate", "h2");
    assert_eq!(status, "failed");
    assert_eq!(failed["rc"], 69, "{failed:#}");
    assert_eq!(failed["error"]["kind"], "no_daemon", "{failed:#}");
    assert_eq!(failed["state"], "stopped", "{failed:#}");

    // A host without ctl: not installed, ok only with missing_ok.
    let play = fleet.play(
        "ctl.fleet.rotate",
        &["-e", "ctl_path=ctl-not-installed-here", "--limit", "h1"],
    );
    play.expect_code(0);
    assert_eq!(
        play.result("ctl rotate", "h1")["state"],
        "not installed",
        "{play}"
    );
}
