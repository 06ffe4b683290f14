//! Whole-file writes that a crash cannot leave half done, for checkpoints and for every file of
//! a run folder (configuration, metrics, pictures).
//!
//! The bytes go to `<file>.tmp` next to the target, which is fsynced and renamed over the
//! target before the directory is fsynced: a process killed at any instant leaves either the
//! old file or the new one, never a mix, and a power cut cannot reorder the rename before the
//! data. A killed write can leave its `.tmp` behind; [`remove_temporaries`] clears them.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The suffix of a file being written.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// Where `path`'s new contents are written before the rename: `<path>.tmp`.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(TEMPORARY_SUFFIX);
    PathBuf::from(name)
}

/// Replaces `path`'s contents with `bytes` atomically and durably. On error the target is
/// untouched and the temporary file removed; the error says which of the two failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, io::Error)> {
    let tmp = temporary_path(path);
    let written = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err((tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err((path.to_path_buf(), e));
    }
    // The rename is durable only once the directory entry is on disk.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    #[cfg(unix)]
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| (dir, e))?;
    Ok(())
}

/// Deletes every `*.tmp` file directly in `dir` (left by writes a killed process did not
/// finish) and returns their paths. Call it only when no other process writes into `dir`.
pub fn remove_temporaries(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = vec![];
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let is_temporary = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(TEMPORARY_SUFFIX));
        if is_temporary && path.is_file() {
            fs::remove_file(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder for one test, removed when the guard drops.
    fn temp_dir(test: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("nn-atomic-file-{test}-")).tempdir().unwrap()
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() {
        let scratch = temp_dir("replace");
        let dir = scratch.path();
        let path = dir.join("metrics.csv");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn a_failed_write_names_the_path_and_keeps_the_old_file() {
        let scratch = temp_dir("fail");
        let dir = scratch.path();
        let path = dir.join("missing-folder").join("x.json");
        let (failed, _) = write_atomic(&path, b"x").unwrap_err();
        assert_eq!(failed, temporary_path(&path));
    }

    #[test]
    fn stale_temporaries_are_removed_and_other_files_kept() {
        let scratch = temp_dir("stale");
        let dir = scratch.path();
        fs::write(dir.join("last.safetensors.tmp"), b"half").unwrap();
        fs::write(dir.join("metrics.csv.tmp"), b"half").unwrap();
        fs::write(dir.join("metrics.csv"), b"epoch\n").unwrap();
        let mut removed = remove_temporaries(dir).unwrap();
        removed.sort();
        assert_eq!(removed, vec![dir.join("last.safetensors.tmp"), dir.join("metrics.csv.tmp")]);
        assert!(dir.join("metrics.csv").exists());
    }
}
