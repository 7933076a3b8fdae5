//! What updating a counter costs, beside its floor measured in the same run:
//!
//! - `counter/inc` and `gauge/set`: a registered [`Counter`]'s `inc` and [`Gauge`]'s `set`;
//! - `counter/atomic_floor`: a bare `AtomicU64::fetch_add(1, Relaxed)`, what `inc` is built on;
//! - `counter/inc_4_threads`: four threads counting into one counter at once (contended).
//! - `counters/read_40`: what one `ctl counters` reads, for a daemon with 40 counters.
//!
//! Run: `cargo bench -p control-server --bench counters`.

use control_server::Counters;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

fn update(c: &mut Criterion) {
    let counters = Counters::new();
    let counter = counters.counter("bench.requests", "Requests");
    let gauge = counters.gauge("bench.queue", "Queue depth");
    let floor = AtomicU64::new(0);
    let mut group = c.benchmark_group("counter");
    group.bench_function("atomic_floor", |b| {
        b.iter(|| black_box(&floor).fetch_add(1, Ordering::Relaxed))
    });
    group.bench_function("inc", |b| b.iter(|| black_box(&counter).inc()));
    group.bench_function("gauge_set", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            black_box(&gauge).set(n)
        })
    });
    group.bench_function("inc_4_threads", |b| {
        b.iter_custom(|iters| {
            let started = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..4 {
                    let counter = counter.clone();
                    s.spawn(move || {
                        for _ in 0..iters {
                            counter.inc();
                        }
                    });
                }
            });
            // Per update, of the 4 * iters made.
            started.elapsed() / 4
        })
    });
    group.finish();

    let many = Counters::new();
    for i in 0..40 {
        many.counter(&format!("bench.c{i}"), "A counter").inc();
    }
    c.bench_function("counters/read_40", |b| b.iter(|| black_box(many.read(""))));
}

criterion_group!(benches, update);
criterion_main!(benches);
