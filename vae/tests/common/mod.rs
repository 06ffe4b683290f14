//! What the CLI tests share.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The binary at `path`, to be run from a fresh, empty working directory of its own: whatever it
/// writes to a relative path (a default `runs/…` folder) lands in the temporary directory, never
/// in the source tree, and no two commands share one.
pub fn command(path: &str) -> Command {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let cwd = std::env::temp_dir().join(format!("vae-cli-cwd-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(&cwd).expect("a temporary working directory");
    let mut c = Command::new(path);
    c.current_dir(cwd);
    c
}
