//! The fuzz targets of `vae::fuzz` on the stable toolchain: each replays its committed corpus
//! (`vae/fuzz/corpus/TARGET/`: the seeds the project writes and what long runs kept) and the
//! inputs of crashes found and fixed (`vae/fuzz/regressions/TARGET/`), then a bounded number
//! of mutations of them. The long, coverage-guided runs are `vae/fuzz/run.sh` (cargo fuzz,
//! nightly); this is their short version, with no nightly needed.
//!
//! `VAE_FUZZ_INPUTS=N` sets the mutations per target (default 600), `VAE_FUZZ_SEED` their
//! generator's seed. An input that makes a target panic or run past [`PER_INPUT`] is written
//! under `target/fuzz-failures/` and the failure names the commands that replay it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vae::fuzz::{seeds, target, Target, TARGETS};

/// The longest one input may take (libFuzzer's `-timeout` in the long runs is the same idea;
/// here generous, since CI's two cores also run other tests).
const PER_INPUT: Duration = Duration::from_secs(10);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn inputs_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    files.iter().map(|p| (p.display().to_string(), std::fs::read(p).unwrap())).collect()
}

/// The committed inputs of `name`: its corpus, then its regressions.
fn committed(name: &str) -> Vec<(String, Vec<u8>)> {
    let mut all = inputs_in(&fuzz_dir().join("corpus").join(name));
    all.extend(inputs_in(&fuzz_dir().join("regressions").join(name)));
    all
}

/// A small deterministic generator (xorshift64*), so that a failure's seed replays it.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `input` changed by one to four edits of the kinds fuzzers find most with: bits, bytes
    /// and sizes set to boundary values, ranges cut, repeated or spliced from `others`, and
    /// tokens of the text formats inserted.
    fn mutate(&mut self, input: &[u8], others: &[(String, Vec<u8>)]) -> Vec<u8> {
        const TOKENS: [&str; 20] = [
            "-1",
            "0",
            "1e309",
            "NaN",
            "inf",
            "18446744073709551616",
            "4294967295",
            ",",
            ":",
            "=",
            "\n",
            "\"",
            "[",
            "]",
            "{",
            "}",
            "%",
            "..",
            "--",
            "\r\n\r\n",
        ];
        const WORDS: [u32; 7] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1_000_000_000, 3073];
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let len = out.len();
            let at = self.below(len + 1);
            match self.below(9) {
                0 if len > 0 => out[at.min(len - 1)] ^= 1 << self.below(8),
                1 if len > 0 => out[at.min(len - 1)] = [0, 1, 0x7f, 0x80, 0xff][self.below(5)],
                2 if len >= 4 => {
                    let w = WORDS[self.below(WORDS.len())];
                    let bytes = if self.below(2) == 0 { w.to_be_bytes() } else { w.to_le_bytes() };
                    let at = at.min(len - 4);
                    out[at..at + 4].copy_from_slice(&bytes);
                }
                3 if len > 0 => {
                    let end = (at + 1 + self.below(64)).min(len);
                    out.drain(at.min(end)..end);
                }
                4 if len > 0 => {
                    let start = self.below(len);
                    let end = (start + 1 + self.below(256)).min(len);
                    let piece = out[start..end].to_vec();
                    out.splice(at..at, piece);
                }
                5 => out.splice(at..at, TOKENS[self.below(TOKENS.len())].bytes()).for_each(drop),
                6 => out.truncate(at),
                7 if !others.is_empty() => {
                    let other = &others[self.below(others.len())].1;
                    let from = self.below(other.len() + 1);
                    out.truncate(at);
                    out.extend_from_slice(&other[from..]);
                }
                _ => {
                    let n = 1 + self.below(16);
                    let random: Vec<u8> = (0..n).map(|_| self.next() as u8).collect();
                    out.splice(at..at, random);
                }
            }
        }
        out
    }
}

/// Runs `input` through `t`; on a panic or an input past [`PER_INPUT`], keeps the input and
/// returns what to tell.
fn try_input(t: &Target, what: &str, input: &[u8]) -> Result<(), String> {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| (t.run)(input)));
    let took = started.elapsed();
    let problem = match outcome {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("panicked ({message})")
        }
        Ok(()) if took > PER_INPUT => format!("took {took:.1?}, more than {PER_INPUT:?}"),
        Ok(()) => return Ok(()),
    };
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
    std::fs::create_dir_all(&kept).unwrap();
    let file = kept.join(format!("{}-{:016x}", t.name, fnv1a(input)));
    std::fs::write(&file, input).unwrap();
    Err(format!(
        "target {} {problem} on {what}; the input is in {}; replay it with\n  \
         VAE_FUZZ_TARGET={} VAE_FUZZ_INPUT={} cargo test --release -p vae --test integration -- fuzz_corpus::replay_the_named_input --nocapture\n  \
         or cargo +nightly fuzz run --fuzz-dir vae/fuzz {} {}",
        t.name,
        file.display(),
        t.name,
        file.display(),
        t.name,
        file.display()
    ))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn every_target_survives_its_committed_inputs_and_bounded_mutations_of_them() {
    let inputs = env_number("VAE_FUZZ_INPUTS", 600) as usize;
    let seed = env_number("VAE_FUZZ_SEED", 0x5eed);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = TARGETS
            .iter()
            .map(|t| {
                scope.spawn(move || {
                    let corpus = committed(t.name);
                    assert!(!corpus.is_empty(), "target {} has no committed inputs", t.name);
                    let mut failures = vec![];
                    for (name, input) in &corpus {
                        failures.extend(try_input(t, name, input).err());
                    }
                    let mut mutator = Mutator(seed ^ fnv1a(t.name.as_bytes()) | 1);
                    for k in 0..inputs {
                        let base = &corpus[mutator.below(corpus.len())];
                        let input = mutator.mutate(&base.1, &corpus);
                        let what = format!("mutation {k} of {} (VAE_FUZZ_SEED={seed})", base.0);
                        failures.extend(try_input(t, &what, &input).err());
                        if failures.len() >= 3 {
                            break;
                        }
                    }
                    eprintln!("fuzz_corpus: {}: {} committed inputs and {inputs} mutations", t.name, corpus.len());
                    failures
                })
            })
            .collect();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_committed_seeds_are_the_inputs_the_project_writes() {
    // Rewriting them: VAE_FUZZ_WRITE_SEEDS=1 and this test.
    let write = std::env::var_os("VAE_FUZZ_WRITE_SEEDS").is_some();
    let mut stale = vec![];
    for (target, name, bytes) in seeds().unwrap() {
        let path = fuzz_dir().join("corpus").join(target).join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "these seeds differ from what the project writes now (a format changed?); rewrite them with \
         VAE_FUZZ_WRITE_SEEDS=1 cargo test --release -p vae --test integration -- fuzz_corpus::the_committed_seeds:\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_target_is_a_cargo_fuzz_binary_with_a_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for t in &TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{}.rs", t.name));
        let text = std::fs::read_to_string(&source).unwrap_or_default();
        assert!(
            text.contains(&format!("vae::fuzz::target(\"{}\")", t.name)),
            "{} must run the target {}",
            source.display(),
            t.name
        );
        assert!(manifest.contains(&format!("name = \"{}\"", t.name)), "vae/fuzz/Cargo.toml lacks the bin {}", t.name);
        assert!(seeds().unwrap().iter().any(|(s, _, _)| *s == t.name), "target {} has no seed", t.name);
    }
}

/// Replays one input given by path: what a failure above names.
#[test]
fn replay_the_named_input() {
    let (Some(name), Some(path)) = (std::env::var_os("VAE_FUZZ_TARGET"), std::env::var_os("VAE_FUZZ_INPUT")) else {
        eprintln!("skipped: VAE_FUZZ_TARGET and VAE_FUZZ_INPUT name a target and an input to replay");
        return;
    };
    let t = target(&name.to_string_lossy()).expect("VAE_FUZZ_TARGET names a target of vae::fuzz::TARGETS");
    // cargo runs tests in vae/: a path relative to the repository's root is read from there.
    let path = PathBuf::from(path);
    let path = if path.exists() { path } else { Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path) };
    let input = std::fs::read(&path).expect("VAE_FUZZ_INPUT names a readable file");
    (t.run)(&input);
}
