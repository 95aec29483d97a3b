//! Benchmarks of rt-ext against its alternatives (see README.md).
//!
//! The suite (`cargo bench -p benches`) runs every operation with rt-ext and
//! with each peer that can do the same job, in the same run; the `report`
//! binary runs it with short measurement times and prints one table of
//! figures and ratios; the `icount` binary runs one operation a given number
//! of times, for instruction counts under callgrind (`icount.sh`).

pub mod layout;
pub mod suite;
pub mod workload;
