//! Opt-in per-op timing of the forward pass: `UE8_PROFILE=1` in the environment makes each
//! session accumulate wall time per op and write a table to stderr when it is dropped. Off (the
//! default), a probe costs one branch and no clock read.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The ops a Llama forward pass is split into for timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Embed,
    Norm,
    QkvProj,
    RopeCache,
    Attention,
    OProj,
    GateUpProj,
    Swiglu,
    DownProj,
    Residual,
    LmHead,
}

const OPS: [(Op, &str); 11] = [
    (Op::Embed, "embed"),
    (Op::Norm, "rms_norm"),
    (Op::QkvProj, "q/k/v proj"),
    (Op::RopeCache, "rope+kv cache"),
    (Op::Attention, "attention"),
    (Op::OProj, "o proj"),
    (Op::GateUpProj, "gate/up proj"),
    (Op::Swiglu, "swiglu"),
    (Op::DownProj, "down proj"),
    (Op::Residual, "residual add"),
    (Op::LmHead, "final norm+lm_head"),
];

/// Whether `UE8_PROFILE` is set to something other than empty or `0` (read once per process).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("UE8_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// Cumulative time per op plus forward-call counts, split by single-token and batched calls.
#[derive(Debug)]
pub struct Profile {
    on: bool,
    /// [op][0 = decode (m == 1), 1 = batch (m > 1)]
    total: [[Duration; 2]; OPS.len()],
    calls: [u64; 2],
}

impl Default for Profile {
    fn default() -> Self {
        Profile::new(enabled())
    }
}

impl Profile {
    /// A profile that records only when `on`.
    pub fn new(on: bool) -> Self {
        Profile {
            on,
            total: [[Duration::ZERO; 2]; OPS.len()],
            calls: [0; 2],
        }
    }

    /// A clock reading if recording, for [`Profile::stop`].
    #[inline]
    pub fn start(&self) -> Option<Instant> {
        self.on.then(Instant::now)
    }

    /// Adds the time since `t0` to `op` (for a forward call of `m` tokens).
    #[inline]
    pub fn stop(&mut self, op: Op, m: usize, t0: Option<Instant>) {
        if let Some(t0) = t0 {
            let i = OPS.iter().position(|(o, _)| *o == op).unwrap_or(0);
            if let Some(slot) = self.total.get_mut(i) {
                slot[usize::from(m > 1)] += t0.elapsed();
            }
        }
    }

    /// Counts one forward call of `m` tokens.
    pub fn count_call(&mut self, m: usize) {
        if self.on {
            self.calls[usize::from(m > 1)] += 1;
        }
    }

    /// The table: op, decode ms per call, decode share, batch ms per call, batch share.
    pub fn report(&self) -> String {
        let mut s = String::from("UE8_PROFILE  op | decode ms/call | % | batch ms/call | %\n");
        let sum = |j: usize| -> f64 { self.total.iter().map(|t| t[j].as_secs_f64()).sum() };
        let (sd, sb) = (sum(0), sum(1));
        for ((_, name), t) in OPS.iter().zip(&self.total) {
            let per = |j: usize| t[j].as_secs_f64() * 1e3 / (self.calls[j].max(1) as f64);
            let pct = |j: usize, tot: f64| {
                if tot > 0.0 {
                    100.0 * t[j].as_secs_f64() / tot
                } else {
                    0.0
                }
            };
            s += &format!(
                "UE8_PROFILE  {name:<20} | {:8.3} | {:5.1} | {:8.3} | {:5.1}\n",
                per(0),
                pct(0, sd),
                per(1),
                pct(1, sb)
            );
        }
        s += &format!(
            "UE8_PROFILE  calls: {} decode, {} batch; total {:.1} ms decode, {:.1} ms batch\n",
            self.calls[0],
            self.calls[1],
            sd * 1e3,
            sb * 1e3
        );
        s
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if self.on && self.calls.iter().any(|&c| c > 0) {
            // The one place the library prints: an explicit, opt-in diagnostic.
            eprint!("{}", self.report());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_profile_records_nothing() {
        let mut p = Profile::new(false);
        let t0 = p.start();
        assert!(t0.is_none());
        p.stop(Op::Attention, 1, t0);
        p.count_call(1);
        assert_eq!(p.calls, [0, 0]);
        assert!(p.total.iter().all(|t| t[0].is_zero() && t[1].is_zero()));
    }

    #[test]
    fn enabled_profile_splits_decode_and_batch() {
        let mut p = Profile::new(true);
        let t0 = p.start();
        std::thread::sleep(Duration::from_millis(2));
        p.stop(Op::LmHead, 1, t0);
        p.stop(Op::Norm, 7, p.start());
        p.count_call(1);
        p.count_call(7);
        assert_eq!(p.calls, [1, 1]);
        assert!(p.total[10][0] >= Duration::from_millis(2));
        assert!(p.total[10][1].is_zero());
        assert!(p.report().contains("final norm+lm_head"));
        p.on = false; // no stderr output from the test
    }
}
