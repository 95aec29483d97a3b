//! `cargo bench -p benches`: the whole suite, with criterion's usual output.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = suite;
    config = config();
    targets = benches::suite::all
}
criterion_main!(suite);
