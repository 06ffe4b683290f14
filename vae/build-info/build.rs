//! Records the commit the binaries are built from (`build_info::commit`), marked `-dirty` when
//! the workspace's sources differ from it, and what differed (`build_info::changes`), so that a
//! run folder says which code trained it.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The folders whose sources the binaries are built from, relative to this crate.
const SOURCES: [&str; 8] = [
    "../src",
    "../../tensor",
    "../../autograd",
    "../../gpu",
    "../../nn",
    "../../descriptors",
    "../../shaders",
    "../../Cargo.lock",
];

/// FNV-1a, 64 bits: a short name for a diff (two builds with the same name had the same changes).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn main() {
    // Tracked sources that differ from HEAD (untracked files are not built unless a module
    // names them, and then a tracked file differs too), as `git status --porcelain` lines.
    let changed = git(&[&["status", "--porcelain", "--untracked-files=no", "--"][..], &SOURCES[..]].concat());
    // Each line is a status then a path (`git` above trims the first line's leading space).
    let paths: Vec<&str> = changed
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.trim_start().split_once(' '))
        .map(|(_, p)| p.trim())
        .collect();
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) if !paths.is_empty() => format!("{hash}-dirty"),
        Some(hash) => hash,
        None => "unknown".into(),
    };
    // What differed: the paths, and a hash of the diff itself.
    let changes = if paths.is_empty() {
        String::new()
    } else {
        let diff = git(&[&["diff", "HEAD", "--"][..], &SOURCES[..]].concat()).unwrap_or_default();
        format!("{} (diff fnv1a {:016x})", paths.join(", "), fnv1a(diff.as_bytes()))
    };
    println!("cargo:rustc-env=VAE_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=VAE_BUILD_CHANGES={changes}");
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
