//! Records the commit the binaries are built from (`vae::provenance::BUILD_COMMIT`), marked
//! `-dirty` when the workspace's sources differ from it, so that a run folder says which code
//! trained it.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The folders whose sources the binaries are built from, relative to this crate.
const SOURCES: [&str; 8] =
    ["src", "../tensor", "../autograd", "../gpu", "../nn", "../descriptors", "../shaders", "../Cargo.lock"];

fn main() {
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        // Tracked sources that differ from HEAD (untracked files are not built unless a
        // module names them, and then a tracked file differs too).
        Some(hash) => match git(&[&["status", "--porcelain", "--untracked-files=no", "--"][..], &SOURCES[..]].concat())
        {
            Some(changes) if !changes.is_empty() => format!("{hash}-dirty"),
            _ => hash,
        },
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=VAE_BUILD_COMMIT={commit}");
    // Run again when HEAD moves (a commit, a checkout) and when a source changes, so the mark
    // follows the tree. Only paths that exist are watched: cargo treats a missing one as
    // always changed.
    println!("cargo:rerun-if-changed=build.rs");
    for path in SOURCES {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", name]).map(PathBuf::from) {
            if path.is_file() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
