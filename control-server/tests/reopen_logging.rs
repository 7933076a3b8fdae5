//! A failed reopen of the very file the daemon's `tracing` output goes to: the warning about it
//! must not wait on the file's lock. In a test binary of its own, with a global subscriber:
//! `tracing` caches per call site whether anyone listens, and a scoped subscriber in a binary
//! whose other tests hit the same call site with none could be skipped, and the deadlock with it.

use control_server::LogFile;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn a_failed_reopen_logging_into_its_own_file_does_not_deadlock() {
    // One global subscriber for the whole binary, writing into whichever file is current.
    let current: Arc<Mutex<Option<LogFile>>> = Arc::default();
    let writer = current.clone();
    tracing_subscriber::fmt()
        .with_writer(move || -> Box<dyn std::io::Write> {
            // Between two modes (the last mode's watch thread may still warn as its file
            // goes): stderr.
            match writer.lock().unwrap().clone() {
                Some(log) => Box::new(log),
                None => Box::new(std::io::stderr()),
            }
        })
        .with_ansi(false)
        .init();
    let modes = [
        ("line", LogFile::options()),
        ("buffered", LogFile::options().buffered()),
        ("line, watched", LogFile::options().watch_rotation(true)),
        (
            "buffered, watched",
            LogFile::options().buffered().watch_rotation(true),
        ),
    ];
    for (mode, options) in modes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = options.open(&path).unwrap();
        *current.lock().unwrap() = Some(log.clone());
        // The path cannot be opened: a directory in the way, put there in one rename, so
        // that a watch sees no moment without a file at the path.
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        std::fs::rename(dir.path().join("tmp"), &path).unwrap();

        let (tx, rx) = std::sync::mpsc::channel();
        let reopening = log.clone();
        std::thread::spawn(move || tx.send(reopening.reopen()));
        let reopened = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
            panic!("{mode}: the reopen did not return within 10 s: its warning waits on the file's lock")
        });
        let reopened = reopened.expect_err("the reopen is refused");
        log.flush().unwrap();
        let old = std::fs::read_to_string(dir.path().join("a.log.1")).unwrap();
        assert!(old.contains("cannot reopen log file"), "{mode}: {old:?}");
        // The count is taken before the warning is written (a watch may warn too, before).
        let counted = reopened.bytes_to_old as usize;
        assert!(
            counted == 0 || old.as_bytes()[counted - 1] == b'\n',
            "{mode}: {counted} is not at a line's end in {old:?}"
        );
        assert!(
            old[counted..].contains("cannot reopen log file"),
            "{mode}: {old:?}"
        );
        *current.lock().unwrap() = None;
    }
}
