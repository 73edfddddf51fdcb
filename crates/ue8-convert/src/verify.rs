//! `verify` as data: re-hash every file against `ue8-manifest.json` (missing, changed, unlisted
//! files), then check the structure: headers, index, quantized groups and their scales.

use serde::Serialize;
use std::path::Path;
use ue8_io::manifest::{Manifest, MANIFEST_FILE};
use ue8_io::writer::hash_file;
use ue8_io::Checkpoint;

/// Result of `ue8 verify`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub path: String,
    pub files_checked: usize,
    pub tensors: usize,
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn listed_files(dir: &Path, rel: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir.join(rel)) else {
        return;
    };
    for e in rd.flatten() {
        let r = rel.join(e.file_name());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            listed_files(dir, &r, out);
        } else {
            out.push(
                r.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
}

/// Verifies a directory written by ue8.
pub fn verify(dir: &Path) -> VerifyReport {
    let mut problems = Vec::new();
    let mut files_checked = 0;
    let manifest_path = dir.join(MANIFEST_FILE);
    match Manifest::read(&manifest_path) {
        Err(e) => problems.push(e.to_string()),
        Ok(m) => {
            for f in &m.files {
                let bad_name =
                    f.path.split('/').any(|c| c == ".." || c.is_empty()) || f.path.starts_with('/');
                if bad_name {
                    problems.push(format!(
                        "{}: manifest lists an unsafe path '{}'",
                        manifest_path.display(),
                        f.path
                    ));
                    continue;
                }
                let p = dir.join(&f.path);
                match hash_file(&p) {
                    Err(e) => problems.push(format!(
                        "{}: listed in the manifest but unreadable: {e}",
                        f.path
                    )),
                    Ok(d) => {
                        files_checked += 1;
                        if d.bytes != f.bytes {
                            problems.push(format!(
                                "{}: {} bytes, manifest says {}",
                                f.path, d.bytes, f.bytes
                            ));
                        } else if d.sha256 != f.sha256 {
                            problems.push(format!(
                                "{}: sha256 {} differs from the manifest's {}",
                                f.path, d.sha256, f.sha256
                            ));
                        }
                    }
                }
            }
            let mut present = Vec::new();
            listed_files(dir, Path::new(""), &mut present);
            for p in present {
                if p != MANIFEST_FILE && !m.files.iter().any(|f| f.path == p) {
                    problems.push(format!("{p}: present but not in the manifest"));
                }
            }
        }
    }
    let mut tensors = 0;
    match Checkpoint::open(dir) {
        Err(e) => problems.push(e.to_string()),
        Ok(ck) => {
            tensors = ck.len();
            if ue8_io::layout_v4::is_v4(&ck) {
                problems.extend(crate::v4::inspect_v4(&ck).anomalies); // v4: V4 structure check
            } else {
                let report = crate::inspect::inspect(&ck);
                problems.extend(report.anomalies);
            }
        }
    }
    VerifyReport {
        path: dir.display().to_string(),
        files_checked,
        tensors,
        problems,
    }
}
