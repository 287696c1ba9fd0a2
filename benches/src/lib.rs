//! Benchmarks and peer echo servers for wskit.
