//! A short multi-threaded streaming-read measurement of this machine's memory bandwidth: the CPU row of
//! the catalog uses it instead of a datasheet figure.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Smallest buffer read: larger than most last-level caches, small enough for a shared machine.
pub const BANDWIDTH_BUFFER_BYTES: usize = 128 << 20;
/// Largest buffer read, whatever the cache size says.
const MAX_BUFFER_BYTES: usize = 2 << 30;

/// The buffer [`measure_read_bandwidth`] reads: twice the last-level cache where the OS reports it
/// (some server parts have 260 MB of L3, which a 128 MiB buffer would measure instead of DRAM),
/// at least [`BANDWIDTH_BUFFER_BYTES`], at most 2 GiB.
pub fn buffer_bytes() -> usize {
    last_level_cache_bytes()
        .map_or(BANDWIDTH_BUFFER_BYTES, |c| c.saturating_mul(2))
        .clamp(BANDWIDTH_BUFFER_BYTES, MAX_BUFFER_BYTES)
}

/// Size of the largest cache of CPU 0 from Linux sysfs (`.../cache/index*/size`, e.g. "266240K").
fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("size")).ok())
        .filter_map(|s| parse_cache_size(s.trim()))
        .max()
}

fn parse_cache_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok()?.checked_mul(mult)
}

/// Result of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BandwidthMeasurement {
    /// Bytes per second, read.
    pub bytes_per_s: f64,
    pub threads: usize,
    pub seconds: f64,
}

/// Read a [`buffer_bytes`] buffer over and over with `threads` threads for about `duration`,
/// each thread summing its own slice; returns the bytes read per second of wall time. The first pass
/// (page faults, cold TLB) is not timed.
pub fn measure_read_bandwidth(threads: usize, duration: Duration) -> BandwidthMeasurement {
    let threads = threads.max(1);
    let words = buffer_bytes() / 8;
    // Distinct values so no page is shared with the zero page.
    let buffer: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads);
    let slices: Vec<&[u64]> = buffer.chunks(chunk).collect();
    // Warm-up pass: fault pages in, fill TLBs.
    for s in &slices {
        black_box(sum_words(s));
    }
    let start = Instant::now();
    let passes: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = slices
            .iter()
            .map(|s| {
                scope.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        black_box(sum_words(black_box(s)));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let bytes: f64 = slices
        .iter()
        .zip(&passes)
        .map(|(s, n)| (s.len() * 8) as f64 * *n as f64)
        .sum();
    BandwidthMeasurement {
        bytes_per_s: if seconds > 0.0 { bytes / seconds } else { 0.0 },
        threads,
        seconds,
    }
}

/// Sum with independent accumulators so the loop is bound by loads, not by an add chain.
fn sum_words(s: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut it = s.chunks_exact(8);
    for c in &mut it {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*v);
        }
    }
    let tail: u64 = it.remainder().iter().fold(0, |a, v| a.wrapping_add(*v));
    acc.iter().fold(tail, |a, v| a.wrapping_add(*v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse_with_and_without_units() {
        assert_eq!(parse_cache_size("266240K"), Some(266240 << 10));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("1G"), Some(1 << 30));
        assert_eq!(parse_cache_size("4096"), Some(4096));
        assert_eq!(parse_cache_size("K"), None);
        assert_eq!(parse_cache_size("12X"), None);
        let b = buffer_bytes();
        assert!(
            (BANDWIDTH_BUFFER_BYTES..=MAX_BUFFER_BYTES).contains(&b),
            "{b}"
        );
    }

    #[test]
    fn sum_words_matches_a_plain_sum_on_odd_lengths() {
        for n in [0usize, 1, 7, 8, 9, 31, 33, 1000] {
            let v: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
            assert_eq!(sum_words(&v), v.iter().sum::<u64>(), "n = {n}");
        }
    }
}
