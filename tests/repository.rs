//! The repository itself: what git tracks stays small (no checkpoint or dataset slips in).

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The largest file the repository may track: pictures and docs fit; a checkpoint does not.
const MAX_TRACKED_BYTES: u64 = 1 << 20;

#[test]
fn git_tracks_no_file_over_one_mebibyte() {
    let out = match Command::new("git").args(["ls-files", "-z"]).current_dir(ROOT).output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            eprintln!("skipped: `git ls-files` failed here ({})", String::from_utf8_lossy(&out.stderr).trim());
            return;
        }
        Err(e) => {
            eprintln!("skipped: git is not available ({e})");
            return;
        }
    };
    let too_big: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let size = std::fs::metadata(Path::new(ROOT).join(p)).ok()?.len();
            (size > MAX_TRACKED_BYTES).then(|| format!("{p} ({size} bytes)"))
        })
        .collect();
    assert!(too_big.is_empty(), "tracked files over 1 MiB: {too_big:?}");
}
