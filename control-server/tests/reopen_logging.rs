//! A failed reopen of the very file the daemon's `tracing` output goes to: the warning about it
//! must not wait on the file's lock. In a test binary of its own, with a global subscriber:
//! `tracing` caches per call site whether anyone listens, and a scoped subscriber in a binary
//! whose other tests hit the same call site with none could be skipped, and the deadlock with it.

use control_server::LogFile;
use std::time::Duration;

#[test]
fn a_failed_reopen_logging_into_its_own_file_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let log = LogFile::open(&path).unwrap();
    tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .init();
    std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
    std::fs::create_dir(&path).unwrap(); // the reopen fails, and says so through tracing

    let (tx, rx) = std::sync::mpsc::channel();
    let reopening = log.clone();
    std::thread::spawn(move || tx.send(reopening.reopen()));
    let reopened = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the reopen did not return within 10 s: its warning waits on the file's lock");
    assert!(reopened.error.is_some());
    let old = std::fs::read_to_string(dir.path().join("a.log.1")).unwrap();
    assert!(old.contains("cannot reopen log file"), "{old:?}");
    // The count is taken before the warning is written.
    assert_eq!(reopened.bytes_to_old, 0);
}
