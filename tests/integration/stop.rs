//! A stop ends within its bound whatever holds the daemon up: a step blocked on its thread, a
//! disk that does not answer.

use crate::{config, ctl_in_background, sandbox_with_daemon, HELD};
use rustix::process::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use tests::{require_root, run, wait_for, Sandbox, WAIT};

#[test]
fn sigterm_during_a_blocked_load_step_stops_within_the_grace() {
    let (sb, mut daemon) = sandbox_with_daemon("stuckload", 20, &["--shutdown-grace", "1s"]);
    let gate = sb.path("stuckload.gate");
    tests::make_gate(&gate);
    std::fs::write(
        sb.path("stuckload.toml"),
        format!(
            "{}load_gate = {:?}\n",
            config(&sb.path("stuckload.log"), 20, "beta"),
            gate.display().to_string()
        ),
    )
    .unwrap();
    let check = ctl_in_background(&sb, &["--timeout", HELD, "check", "stuckload"]);
    wait_for("the check to block at the gate", WAIT, || {
        daemon.assert_alive();
        daemon
            .log()
            .contains("load: blocked at the gate")
            .then_some(())
    });

    daemon.signal(Signal::TERM);
    // The gate stays shut: the load step never returns, and the stop must not wait for it.
    let status = daemon.wait_exit();
    assert!(status.success(), "{status}:\n{}", daemon.log());
    let check = check.join().unwrap();
    assert_ne!(check.code, Some(0), "{check}");
}

/// An ext4 file system in a file, mounted on a loop device; unmounted when dropped.
struct LoopMount {
    dir: PathBuf,
}

impl LoopMount {
    fn new(sb: &Sandbox) -> LoopMount {
        let image = sb.path("disk.img");
        let dir = sb.path("disk");
        std::fs::create_dir(&dir).unwrap();
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(32 << 20).unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image)).expect_code(0);
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&dir))
        .expect_code(0);
        LoopMount { dir }
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.dir).output();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
    }
}

/// A frozen file system (`fsfreeze -f`): every write to it waits until it thaws. Thawed when
/// dropped, so that a failing test leaves nothing stuck.
struct Frozen<'a>(&'a Path);

impl<'a> Frozen<'a> {
    fn new(dir: &'a Path) -> Frozen<'a> {
        run(Command::new("fsfreeze").arg("-f").arg(dir)).expect_code(0);
        Frozen(dir)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(self.0).output();
    }
}

#[test]
fn sigterm_with_the_log_file_on_a_frozen_disk_gives_up_within_the_grace() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let mount = LoopMount::new(&sb);
    let log = mount.dir.join("frozen.log");
    let cfg = sb.write_config("frozen.toml", &config(&log, 20, "alpha"));
    let mut daemon = sb.start_daemon("frozen", &cfg, &["--shutdown-grace", "1s"]);
    let frozen = Frozen::new(&mount.dir);
    // The daemon writes a line every 20 ms, in line mode on its runtime's thread: that thread
    // is stuck in a write now, or will be at the next line.
    let size = std::fs::metadata(&log).unwrap().len();
    wait_for("the log's writes to stop at the frozen disk", WAIT, || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        (std::fs::metadata(&log).unwrap().len() == size).then_some(())
    });

    daemon.signal(Signal::TERM);
    // Given up within the grace and the last writes: it says so and exits. The kernel holds a
    // thread still waiting for the disk, and the process with it, until the disk thaws;
    // nothing in user space can end that wait.
    let stderr = wait_for("the daemon to give up its stop", WAIT, || {
        let stderr = daemon.log();
        stderr.contains("did not finish within").then_some(stderr)
    });
    drop(frozen);
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(1), "{status}:\n{stderr}");
}
