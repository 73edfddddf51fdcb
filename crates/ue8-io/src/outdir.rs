//! Atomic output directories: everything is written under a hidden sibling name and renamed to the
//! requested name only when complete, so an interrupted run never leaves a directory under OUTPUT's
//! name (a killed process leaves only the hidden `.NAME.ue8-partial-PID`, which the next run removes).

use crate::IoError;
use std::path::{Path, PathBuf};

/// An output directory under construction.
pub struct OutputDir {
    final_path: PathBuf,
    tmp_path: PathBuf,
    committed: bool,
}

fn sibling(final_path: &Path, tag: &str) -> Result<PathBuf, IoError> {
    let name = final_path
        .file_name()
        .ok_or_else(|| IoError::Writer {
            path: final_path.to_path_buf(),
            problem: "output path has no file name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match final_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(parent.join(format!(".{name}.ue8-{tag}-{}", std::process::id())))
}

impl OutputDir {
    /// Starts building `final_path`. Fails if it exists and `force` is false.
    pub fn create(final_path: &Path, force: bool) -> Result<Self, IoError> {
        if final_path.symlink_metadata().is_ok() && !force {
            return Err(IoError::OutputExists {
                path: final_path.to_path_buf(),
            });
        }
        let tmp_path = sibling(final_path, "partial")?;
        if tmp_path.exists() {
            std::fs::remove_dir_all(&tmp_path).map_err(|e| IoError::io(&tmp_path, e))?;
        }
        std::fs::create_dir(&tmp_path).map_err(|e| IoError::io(&tmp_path, e))?;
        Ok(OutputDir {
            final_path: final_path.to_path_buf(),
            tmp_path,
            committed: false,
        })
    }

    /// Where files go while the directory is being built.
    pub fn path(&self) -> &Path {
        &self.tmp_path
    }

    /// The name the directory gets on commit.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Renames the finished directory into place (replacing an existing one when created with force).
    pub fn commit(mut self) -> Result<PathBuf, IoError> {
        if self.final_path.symlink_metadata().is_ok() {
            let old = sibling(&self.final_path, "old")?;
            std::fs::rename(&self.final_path, &old)
                .map_err(|e| IoError::io(&self.final_path, e))?;
            std::fs::rename(&self.tmp_path, &self.final_path)
                .map_err(|e| IoError::io(&self.final_path, e))?;
            self.committed = true;
            let res = if old.is_dir() {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
            res.map_err(|e| IoError::io(&old, e))?;
        } else {
            std::fs::rename(&self.tmp_path, &self.final_path)
                .map_err(|e| IoError::io(&self.final_path, e))?;
            self.committed = true;
        }
        Ok(self.final_path.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a failed run must not leave its partial output behind.
            let _ = std::fs::remove_dir_all(&self.tmp_path);
        }
    }
}
