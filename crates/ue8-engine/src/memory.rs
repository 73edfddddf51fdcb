//! Process memory figures from `/proc/self/status` (Linux); `None` elsewhere.

/// A `VmHWM`-style field of /proc/self/status, in bytes.
fn status_field(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// Peak resident set size of this process so far.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field("VmHWM")
}

/// Current anonymous resident memory (heap, stacks; not mmapped file pages).
pub fn rss_anon_bytes() -> Option<u64> {
    status_field("RssAnon")
}
