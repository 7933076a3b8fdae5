//! How fast lines reach a log file, and how long one write takes while rotations run.
//!
//! - `log_file/lines/{1,4}_threads/*`: lines of 110 bytes per second from 1 and 4 threads into
//!   one file, each with the options a user gets by default, each sample ending once every
//!   line is in the file (so a buffered writer cannot look fast by leaving lines queued). The
//!   figure is lines that reached the file per second, counted from the file's size, and the
//!   run prints for each writer the share of lines handed over that reached the file (`kept`):
//!   - `line`: [`LogFile`] in line mode, one `write(2)` per line;
//!   - `buffered`: [`LogFile`] in buffered mode;
//!   - `tracing_appender`: `tracing-appender`'s `non_blocking` writer, not lossy (the anchor: a
//!     writer thread fed one line per message);
//!   - `bufwriter`: a `Mutex<BufWriter<File>>` (the ceiling: a copy under a lock, one write per
//!     8 KiB, no rotation, no thread).
//! - `log_file/latency_during_rotations`: printed, not a criterion figure: the median and p99
//!   of one `write_line` on one thread while another renames and reopens the file as fast as
//!   it can, in each mode.
//!
//! Files go to `/dev/shm` when it exists, so that the figures are about the writers, not the
//! disk. Run: `cargo bench -p control-server --bench log_file`.

use control_server::LogFile;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LINE: &[u8] = b"2026-11-29T01:02:03.456789Z  INFO request{conn=17 pid=4242}: served GET /api/items/12345 in 1.25ms status=200\n";

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// Empties the file between samples; the writers append, so they go on at its new end.
fn truncate(path: &Path) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// Lines handed over and lines found in the file, over a writer's samples.
#[derive(Default)]
struct Kept {
    handed: std::sync::atomic::AtomicU64,
    in_file: std::sync::atomic::AtomicU64,
}

impl Kept {
    /// Counts `iters` lines handed over and what `path` holds of them, then empties it.
    fn count(&self, iters: u64, path: &Path) -> u64 {
        let in_file = std::fs::metadata(path).unwrap().len() / LINE.len() as u64;
        self.handed.fetch_add(iters, Ordering::Relaxed);
        self.in_file
            .fetch_add(in_file.min(iters), Ordering::Relaxed);
        truncate(path);
        in_file.min(iters)
    }

    fn print(&self, writer: &str, threads: u64) {
        let (handed, in_file) = (
            self.handed.load(Ordering::Relaxed),
            self.in_file.load(Ordering::Relaxed),
        );
        if handed == 0 {
            return; // filtered out of this run
        }
        println!(
            "  {writer}, {threads} threads: kept {in_file} of {handed} lines ({:.2}%)",
            100.0 * in_file as f64 / handed.max(1) as f64
        );
    }
}

/// Runs `write` for `iters` lines split over `threads` threads; returns the time taken.
fn on_threads(threads: u64, iters: u64, write: &(impl Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                for _ in 0..n {
                    write();
                }
            });
        }
    });
    start.elapsed()
}

fn lines(c: &mut Criterion) {
    let dir = scratch();
    let mut group = c.benchmark_group("log_file/lines");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    assert_eq!(LINE.len(), 110);
    for threads in [1u64, 4] {
        let id = |name: &str| BenchmarkId::new(format!("{threads}_threads"), name);

        let path = dir.path().join("line.log");
        let log = LogFile::open(&path).unwrap();
        let kept = Kept::default();
        group.bench_function(id("line"), |b| {
            b.iter_custom(|iters| {
                let took = on_threads(threads, iters, &|| log.write_line(LINE).unwrap());
                per_line_kept(took, iters, kept.count(iters, &path))
            })
        });
        kept.print("line", threads);

        let path = dir.path().join("buffered.log");
        let log = LogFile::options().buffered().open(&path).unwrap();
        let kept = Kept::default();
        group.bench_function(id("buffered"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                on_threads(threads, iters, &|| log.write_line(LINE).unwrap());
                log.flush().unwrap();
                per_line_kept(start.elapsed(), iters, kept.count(iters, &path))
            })
        });
        kept.print("buffered", threads);

        let path = dir.path().join("appender.log");
        let file = File::create(&path).unwrap();
        let kept = Kept::default();
        group.bench_function(id("tracing_appender"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                    .lossy(false)
                    .finish(file.try_clone().unwrap());
                on_threads(threads, iters, &|| {
                    writer.clone().write_all(LINE).unwrap();
                });
                // Dropping the guard waits until the worker wrote every line.
                drop(guard);
                per_line_kept(start.elapsed(), iters, kept.count(iters, &path))
            })
        });
        kept.print("tracing_appender", threads);

        let path = dir.path().join("bufwriter.log");
        let file = Mutex::new(BufWriter::new(
            File::options()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap(),
        ));
        let kept = Kept::default();
        group.bench_function(id("bufwriter"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                on_threads(threads, iters, &|| {
                    file.lock().unwrap().write_all(LINE).unwrap();
                });
                file.lock().unwrap().flush().unwrap();
                per_line_kept(start.elapsed(), iters, kept.count(iters, &path))
            })
        });
        kept.print("bufwriter", threads);
    }
    group.finish();
}

/// The time per line that reached the file, scaled to `iters` for criterion: a writer that
/// drops lines does not look faster for it.
fn per_line_kept(took: Duration, iters: u64, kept: u64) -> Duration {
    took.mul_f64(iters as f64 / kept.max(1) as f64)
}

/// Median and p99 of one `write_line` while another thread rotates the file without pause.
fn latency_during_rotations(_: &mut Criterion) {
    const WRITES: usize = 1_000_000;
    let dir = scratch();
    println!("log_file/latency_during_rotations ({WRITES} writes each):");
    for (mode, options) in [
        ("line", LogFile::options()),
        ("buffered", LogFile::options().buffered()),
    ] {
        let path = dir.path().join(format!("{mode}.log"));
        let log = options.open(&path).unwrap();
        let stop = AtomicBool::new(false);
        let mut took = Vec::with_capacity(WRITES);
        let rotations = std::thread::scope(|s| {
            let rotating = s.spawn(|| {
                let mut n = 0u64;
                let old: PathBuf = dir.path().join(format!("{mode}.log.old"));
                while !stop.load(Ordering::Relaxed) {
                    std::fs::rename(&path, &old).unwrap();
                    log.reopen().unwrap();
                    std::fs::remove_file(&old).unwrap();
                    n += 1;
                }
                n
            });
            for _ in 0..WRITES {
                let start = Instant::now();
                log.write_line(LINE).unwrap();
                took.push(start.elapsed());
            }
            stop.store(true, Ordering::Relaxed);
            rotating.join().unwrap()
        });
        took.sort();
        let median = took[WRITES / 2];
        let p99 = took[WRITES * 99 / 100];
        println!(
            "  {mode:>8}: median {median:?}, p99 {p99:?} ({:.1}x the median), {rotations} rotations, {} lines dropped",
            p99.as_secs_f64() / median.as_secs_f64(),
            log.dropped_lines()
        );
    }
}

criterion_group!(benches, lines, latency_during_rotations);
criterion_main!(benches);
