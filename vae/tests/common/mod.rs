//! What the CLI tests share: scratch folders that are removed when a test ends (pass or
//! panic), and commands that run from a fresh working directory of their own.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

/// A fresh, empty folder for one test, named after it under the system temp dir. It is removed
/// with everything written into it when the returned guard drops: hold it for the whole test.
pub fn scratch(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("vae-{name}-"))
        .tempdir()
        .expect("a scratch folder under the system temp dir")
}

/// A path for a fresh `--run-dir` (it does not exist yet) inside a scratch folder, and the guard
/// that removes both: `let (_scratch, run) = common::run_dir("name");`.
pub fn run_dir(name: &str) -> (TempDir, PathBuf) {
    let scratch = scratch(name);
    let run = scratch.path().join("run");
    (scratch, run)
}

/// A command that runs from a working directory of its own, removed when the command is dropped:
/// whatever the binary writes to a relative path (a default `runs/…` folder) lands there, never
/// in the source tree, and no two commands share one. Use it as a `Command`.
pub struct IsolatedCommand {
    command: Command,
    _cwd: TempDir,
}

impl Deref for IsolatedCommand {
    type Target = Command;
    fn deref(&self) -> &Command {
        &self.command
    }
}

impl DerefMut for IsolatedCommand {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.command
    }
}

/// The binary at `path`, to be run from a fresh, empty working directory of its own, with the
/// CPU's and the GPU's kernels by the rules (`VAE_CPU_KERNELS=rule`, `VAE_GPU_KERNELS=rule`): a
/// test must not spend seconds timing kernels, write to the home folder's kernel cache, or run
/// on a kernel that another test process measured differently (tests compare runs bit for
/// bit). The tests of the measured choice remove the variables.
pub fn command(path: &str) -> IsolatedCommand {
    let cwd = scratch("cli-cwd");
    let mut command = Command::new(path);
    command.current_dir(cwd.path()).env("VAE_CPU_KERNELS", "rule").env("VAE_GPU_KERNELS", "rule");
    IsolatedCommand { command, _cwd: cwd }
}
