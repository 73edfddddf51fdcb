//! Print this machine's streaming-read bandwidth as `ue8 plan` measures it (run with --release):
//! `cargo run --release -p ue8-plan --example bandwidth -- [threads] [seconds]`.

use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.3);
    let m = ue8_plan::bandwidth::measure_read_bandwidth(threads, Duration::from_secs_f64(seconds));
    println!(
        "{:.2} GB/s read ({} threads, {:.2} s, {} MiB buffer)",
        m.bytes_per_s / 1e9,
        m.threads,
        m.seconds,
        ue8_plan::bandwidth::buffer_bytes() >> 20
    );
}
