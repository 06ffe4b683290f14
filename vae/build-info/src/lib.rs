//! The commit the `vae` binaries are built from, and what the tree changed from it, as the
//! build script found them (`build.rs`: `git rev-parse` and `git status` over the sources).
//!
//! A crate of its own, below `vae`, because the values change with every edit of the tree: a
//! build script's environment reaches every target of its package, and rustc recompiles a crate
//! whose `env!` changed almost from scratch (about 45 s of `vae`'s library and as much again of
//! its unit tests on 2 cores, after a one-line change in `tensor`). Here only these two
//! functions recompile; `vae` sees their signatures, which never change. `#[inline(never)]`
//! keeps their bodies out of the crates that call them: inlined, the string would be theirs.

/// The commit the binaries were built from (`git rev-parse --short=12 HEAD` at build time;
/// "unknown" outside a git checkout), with `-dirty` appended when the workspace's sources
/// differed from it (`git describe --dirty`'s mark): a run trained by a modified tree says so.
#[inline(never)]
pub fn commit() -> &'static str {
    env!("VAE_BUILD_COMMIT")
}

/// What differed from [`commit`] when it is marked `-dirty`: the changed source paths and a hash
/// of their diff (`vae/src/train.rs (diff fnv1a 3f2a…)`); empty for a clean tree.
#[inline(never)]
pub fn changes() -> &'static str {
    env!("VAE_BUILD_CHANGES")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dirty_build_says_what_differed_and_a_clean_one_says_nothing() {
        let (commit, changes) = (commit(), changes());
        assert_eq!(commit.ends_with("-dirty"), !changes.is_empty(), "{commit}: {changes:?}");
        if !changes.is_empty() {
            assert!(changes.contains("(diff fnv1a "), "{changes}");
        }
    }
}
