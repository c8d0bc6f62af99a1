//! Benchmarks of biorule (criterion).
