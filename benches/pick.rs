//! The routing step of a request (snapshot load, route lookup, landing by weight, backend
//! admission, metric handles) at 10 and 10,000 routes: it must not grow with the size of the
//! configuration. `scan` and `labels` are what the same step cost before the snapshot.
//! Run: `cargo bench --bench pick`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard::gateway::bench::Table;

fn pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    for routes in [10usize, 10_000] {
        let table = Table::new(routes);
        let model = format!("m{}", routes / 2);
        g.bench_with_input(BenchmarkId::new("snapshot", routes), &model, |b, m| {
            b.iter(|| black_box(table.pick(black_box(m))))
        });
        g.bench_with_input(BenchmarkId::new("scan", routes), &model, |b, m| {
            b.iter(|| black_box(table.scan(black_box(m))))
        });
    }
    g.finish();

    let table = Table::new(10);
    let handles = table.handles();
    let mut g = c.benchmark_group("count_attempt");
    g.bench_function("labels", |b| {
        b.iter(|| table.count_by_labels(black_box("m0")))
    });
    g.bench_function("handles", |b| b.iter(|| table.count_by_handles(&handles)));
    g.finish();

    let mut g = c.benchmark_group("rebuild");
    g.sample_size(10);
    for routes in [10usize, 10_000] {
        let table = Table::new(routes);
        g.bench_function(BenchmarkId::from_parameter(routes), |b| {
            b.iter(|| table.rebuild())
        });
    }
    g.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
