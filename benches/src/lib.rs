//! Benchmarks of rt-ext against its alternatives (see README.md).
