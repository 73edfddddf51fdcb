//! Progress reporting for the converter commands: an indicatif bar with bytes/s and ETA when stderr
//! is a terminal, a plain line every 10% otherwise, nothing with `--quiet`. Always on stderr, so
//! stdout stays clean for `--json`.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The converter's `Progress` for the terminal.
pub struct CliProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: AtomicU64,
    done: AtomicU64,
    last_decile: AtomicU64,
    label: &'static str,
    start: Mutex<Option<std::time::Instant>>,
}

impl CliProgress {
    pub fn new(quiet: bool, label: &'static str) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(label);
            b
        });
        CliProgress {
            bar,
            plain: !quiet && !tty,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            last_decile: AtomicU64::new(0),
            label,
            start: Mutex::new(None),
        }
    }
}

impl ue8_convert::Progress for CliProgress {
    fn begin(&self, total_bytes: u64, tensors: usize) {
        self.total.store(total_bytes, Ordering::Relaxed);
        if let Ok(mut s) = self.start.lock() {
            *s = Some(std::time::Instant::now());
        }
        if let Some(b) = &self.bar {
            b.set_length(total_bytes);
        } else if self.plain {
            eprintln!(
                "{}: {tensors} tensors, {total_bytes} bytes to write",
                self.label
            );
        }
    }

    fn tensor_written(&self, name: &str, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(name.to_string());
        } else if self.plain {
            let total = self.total.load(Ordering::Relaxed).max(1);
            let decile = done.saturating_mul(10) / total;
            if decile > self.last_decile.swap(decile, Ordering::Relaxed) {
                eprintln!("{}: {}% ({done}/{total} bytes)", self.label, decile * 10);
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Runs `f` on a pool of `threads` threads (0 = one per core).
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    Ok(ue8_convert::exec::with_threads(threads, f)?)
}

/// Parses `--max-shard-size` ("5GB", "500MB", "2GiB", "1000000").
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad size '{s}'"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "bad size unit in '{s}' (use B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let v = n * mult;
    if v.is_nan() || v < 1.0 {
        return Err(format!("size '{s}' must be at least 1 byte"));
    }
    Ok(v as u64)
}

/// The command line, for the manifest.
pub fn command_line() -> Vec<String> {
    std::env::args().collect()
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn shard_sizes_parse_like_hugging_face() {
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("8KB"), Ok(8000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("GB").is_err());
    }
}
