//! Temp dirs removed on `Drop` (kept, and their path printed, with `HOMEAGENT_KEEP_LOGS=1`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Result, TestkitError};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under `$TMPDIR` (or `/tmp`), unique per process and call.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `homeagent-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> Result<TempDir> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("homeagent-{label}-{}-{n}", std::process::id()));
        // A leftover from a previous process with the same pid: start clean.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|source| TestkitError::Io {
            context: format!("create {}", path.display()),
            source,
        })?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if crate::keep_logs() {
            eprintln!("kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
