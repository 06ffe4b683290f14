//! Every `train`, `eval`, `sweep`, `classify` and `explore` command quoted in a fenced code block of the
//! README or of docs/ parses with the binary's own parser (`vae::cli`), and so does each
//! sweep's `train` command with the first value of every grid axis; a new run's `train`
//! configuration also passes `train`'s own check (`RunConfig::check`, which refuses flags the
//! objective ignores and other combinations before any data is read). A renamed flag, a removed
//! value, a refused combination or a placeholder left in a documented command fails here
//! instead of failing a reader.
//!
//! The op-adding checklist's `cargo test` commands (docs/anatomy-of-an-op.md, "Checklist") run
//! with `--list`: each filter must match a test, and the tests the page's steps create for its
//! example ops (a full op, a table row, a layout op, a layer) must be among those listed.

use std::path::{Path, PathBuf};

use clap::Parser;
use vae::cli::{ClassifyCli, EvalCli, ExploreCli, SweepCli, TrainCli};

/// The README and every Markdown file of docs/ and of its notebooks, docs/notebooks/.
/// The root the documented studies are checked into: it holds no sweep, so no point is compared
/// with a folder of this machine's (checking a study writes nothing).
const NO_ROOT: &str = "/nonexistent/sweeps";

/// The workspace's root, where the docs' commands run.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn documents() -> Vec<PathBuf> {
    let root = repository_root();
    let mut files = vec![root.join("README.md")];
    for folder in ["docs", "docs/notebooks"] {
        let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join(folder))
            .unwrap_or_else(|e| panic!("{folder}/ is readable: {e}"))
            .map(|e| e.expect("a docs entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}

/// The logical lines of the fenced code blocks of a Markdown text: continuation lines (ending
/// in `\`) joined, comments (` #` to the end) dropped. Each with its first line number.
pub(crate) fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let (mut inside, mut pending): (bool, Option<(usize, String)>) = (false, None);
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        if !inside {
            continue;
        }
        let code = match line.find(" #") {
            Some(k) => &line[..k],
            None => line,
        };
        let (code, continues) = match code.trim_end().strip_suffix('\\') {
            Some(c) => (c, true),
            None => (code, false),
        };
        let entry = pending.get_or_insert((i + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(code.trim());
        if !continues {
            out.extend(pending.take());
        }
    }
    out
}

/// Splits a command line into words, honouring single and double quotes.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        out.push(word);
    }
    out
}

const BINARIES: [&str; 5] = ["train", "eval", "sweep", "classify", "explore"];

/// The binary and its arguments when `line` runs one of [`BINARIES`]: plainly (`train …`), by
/// path (`target/release/train …`) or through cargo (`cargo run --release -p vae --bin train -- …`).
pub(crate) fn command(line: &str) -> Option<(String, Vec<String>)> {
    let w = words(line);
    let (name, rest) = if w.first().map(String::as_str) == Some("cargo") {
        let bin = w.iter().position(|x| x == "--bin")?;
        let after = match w.get(bin + 2).map(String::as_str) {
            Some("--") => bin + 3,
            _ => bin + 2,
        };
        (w.get(bin + 1)?.clone(), w.get(after..).unwrap_or_default().to_vec())
    } else {
        let first = w.first()?;
        (first.rsplit('/').next()?.to_string(), w[1..].to_vec())
    };
    BINARIES.contains(&name.as_str()).then_some((name, rest))
}

/// Parses one command with its binary's parser; the error says what clap said.
fn parse(name: &str, args: &[String]) -> Result<(), String> {
    let argv = std::iter::once(name.to_string()).chain(args.iter().cloned());
    let err = |e: clap::Error| e.render().to_string();
    match name {
        "train" => {
            let cli = TrainCli::try_parse_from(argv).map_err(err)?;
            if cli.resume.is_some() {
                // A resumed run takes its configuration from the checkpoint.
                return Ok(());
            }
            let mut config = cli.config;
            // A pre-trained encoder is a file an earlier run writes, not one in the repository:
            // this test's own source stands in for it, so that the rest of the check runs.
            if config.pretrained_encoder.is_some() {
                config.pretrained_encoder =
                    Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/docs_commands.rs")));
            }
            config.check().map_err(|e| format!("the configuration check refuses it: {e}"))
        }
        "eval" => EvalCli::try_parse_from(argv).map(drop).map_err(err),
        "classify" => ClassifyCli::try_parse_from(argv).map(drop).map_err(err),
        "explore" => ExploreCli::try_parse_from(argv).map(drop).map_err(err),
        "sweep" => {
            let sweep = SweepCli::try_parse_from(argv).map_err(err)?;
            if sweep.command.is_some() {
                // status, collect and run-point read a sweep that a launch wrote.
                return Ok(());
            }
            // Every point of the study or grid, checked as a launch checks it.
            let root = PathBuf::from(NO_ROOT);
            let launch = &sweep.launch;
            let study = match &launch.study {
                Some(path) => vae::tools::sweep::study::Study::read(&repository_root().join(path), Some(&root)),
                None => vae::tools::sweep::study::Study::from_grid(
                    launch.name.as_deref().unwrap_or_default(),
                    &root,
                    &launch.grid,
                    &launch.train_args,
                ),
            };
            study.map(drop).map_err(|e| format!("its study: {e}"))
        }
        _ => Err(format!("{name} is not a binary this test knows")),
    }
}

#[test]
fn every_documented_command_parses_with_its_binarys_parser() {
    let (mut checked, mut failures) = (0, Vec::new());
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("a readable Markdown file");
        for (line_no, line) in code_lines(&text) {
            let Some((name, args)) = command(&line) else { continue };
            checked += 1;
            let placeholder = args.iter().find(|a| a.contains('…') || a.contains("...") || a.starts_with('<'));
            let result = match placeholder {
                Some(p) => Err(format!("'{p}' is a placeholder: quote the whole command")),
                None => parse(&name, &args),
            };
            if let Err(e) = result {
                failures.push(format!("{}:{line_no}: {}\n  {e}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} documented commands do not parse:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The README alone quotes the main job; the results page quotes many more.
    assert!(checked >= 10, "only {checked} commands found: is the extraction broken?");
}

#[test]
fn the_extraction_finds_commands_in_every_form_the_docs_use() {
    let text = "text\n```sh\ncargo run --release -p vae --bin train -- --arch dense \\\n  --epochs 3   # a comment\n\
                target/release/eval --run runs/x --what 'metrics,recon'\nls\n```\nsweep --name outside\n";
    let lines = code_lines(text);
    let found: Vec<_> = lines.iter().filter_map(|(_, l)| command(l)).collect();
    assert_eq!(found.len(), 2, "{lines:?}");
    assert_eq!(found[0], ("train".to_string(), ["--arch", "dense", "--epochs", "3"].map(String::from).to_vec()));
    assert_eq!(found[1].1, ["--run", "runs/x", "--what", "metrics,recon"].map(String::from).to_vec());
    assert_eq!(lines[0].0, 3, "the line number of the command's first line");
    // A renamed flag is refused with clap's message, a combination train refuses with its check's.
    assert!(parse("train", &["--betta".into(), "2".into()]).unwrap_err().contains("--betta"));
    let ignored_alpha = parse("train", &["--loss".into(), "beta-vae".into(), "--alpha".into(), "2".into()]);
    assert!(ignored_alpha.unwrap_err().contains("--alpha not used by --loss beta-vae"));
    assert!(parse("sweep", &["--name".into(), "s".into(), "--grid".into(), "zdim=2".into()]).is_err());
    assert!(parse("sweep", &["--name".into(), "s".into(), "--grid".into(), "z-dim=2,3".into()]).is_ok());
    let bad_point = ["--name", "s", "--grid", "beta=1,-2"].map(String::from);
    assert!(parse("sweep", &bad_point).unwrap_err().contains("point 1 (beta=-2)"));
    let study = ["--study", "vae/studies/no-such-study.toml"].map(String::from);
    assert!(parse("sweep", &study).unwrap_err().contains("no-such-study.toml"));
}

/// Every study file of `vae/studies/`, each point's `train` and `eval` command checked as a
/// launch checks them, and each one quoted as a `sweep --study` line somewhere in the docs.
#[test]
fn every_study_file_is_valid_and_quoted_in_the_docs() {
    let folder = repository_root().join("vae/studies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("vae/studies/ is readable")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "only {} study files in {}", files.len(), folder.display());
    let quoted: Vec<String> = documents()
        .iter()
        .flat_map(|f| code_lines(&std::fs::read_to_string(f).expect("a readable Markdown file")))
        .filter_map(|(_, line)| command(&line))
        .filter(|(name, _)| name == "sweep")
        .flat_map(|(_, args)| args.windows(2).filter(|w| w[0] == "--study").map(|w| w[1].clone()).collect::<Vec<_>>())
        .collect();
    let mut failures = vec![];
    for file in &files {
        let relative = format!("vae/studies/{}", file.file_name().unwrap_or_default().to_string_lossy());
        let root = PathBuf::from(NO_ROOT);
        if let Err(e) = vae::tools::sweep::study::Study::read(file, Some(&root)) {
            failures.push(format!("{relative}: {e}"));
        }
        if !quoted.contains(&relative) {
            failures.push(format!("{relative}: no `sweep --study {relative}` line in the README or docs/"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The debugger recipe (README.md and docs/reading-path.md): `train` on the reference device,
/// with a breakpoint in the reference convolution.
fn debugger_recipe(page: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repository_root().join(page)).unwrap().replace('\n', " ");
    let start = text
        .find("cargo run -p vae --bin train -- --device reference")
        .unwrap_or_else(|| panic!("{page} gives no `cargo run -p vae --bin train -- --device reference` recipe"));
    let line = &text[start..start + text[start..].find('`').unwrap()];
    command(line).unwrap().1
}

#[test]
fn the_debugger_recipe_runs_a_preset_that_passes_through_the_breakpoint_it_names() {
    let (readme, path) = (debugger_recipe("README.md"), debugger_recipe("docs/reading-path.md"));
    assert_eq!(readme, path, "README.md and the reading path give different recipes");
    let page = std::fs::read_to_string(repository_root().join("docs/reading-path.md")).unwrap();
    assert!(
        page.contains("a breakpoint in `tensor/src/reference/conv.rs`"),
        "the breakpoint changed: update this test"
    );
    let argv = std::iter::once("train".to_string()).chain(readme.iter().cloned());
    let mut config = TrainCli::try_parse_from(argv).unwrap().config;
    config.check().unwrap();
    let size = config.image_size.unwrap_or(64);
    let model = config.new_model([1, size, size]).unwrap();
    // A rank-4 parameter is a convolution's (or a transposed convolution's) kernel: the ops
    // tensor/src/reference/conv.rs defines, on both sides of the model.
    let kernels: Vec<String> = nn::Module::named_parameters(&model)
        .into_iter()
        .filter(|(_, p)| p.shape().len() == 4)
        .map(|(name, _)| name)
        .collect();
    for side in ["encoder.", "decoder."] {
        assert!(kernels.iter().any(|k| k.starts_with(side)), "the recipe's {side} has no convolution: {kernels:?}");
    }
}

/// The page whose "## Checklist" section's `cargo test` commands are run.
const CHECKLIST_PAGE: &str = "docs/anatomy-of-an-op.md";

/// The tests each kind of op's steps create, for the checklist's example of that kind: some
/// filtered command of the checklist must list each (a renamed test is renamed here too).
const EXAMPLES: [(&str, &[&str]); 4] = [
    (
        "a full op (upsample_nearest2d)",
        &[
            "grad_interpolate::upsample_nearest_x2_matches_finite_differences",
            "parity_interpolate::upsampling_forward_and_backward_match_the_reference",
            "reference_tier::upsampling_forward_and_backward_match_the_reference",
            "interpolate::upsample_forward_matches_pytorch_rule",
            "interpolate::bad_upsampling_arguments_are_errors_not_panics",
            "cpu::interpolate::tests::nearest_x2_repeats_each_element_in_a_2x2_block",
            "kernels::tests::every_params_struct_has_its_shaders_size",
        ],
    ),
    (
        "an element-wise table row (silu)",
        &[
            "elementwise_table::tests::every_unary_row_meets_its_known_values_in_f64_and_f32",
            "elementwise_table::tests::every_rows_f32_kernels_match_its_f64_definition",
            "elementwise_table::tests::every_formula_is_inlined_into_its_kernel_loop",
            "elementwise_table::tests::names_are_unique_and_codes_are_table_positions",
            "grad_elementwise::every_row_of_the_unary_table_matches_finite_differences",
            "grad_elementwise::silu_matches_finite_differences",
            "parity_elementwise::every_unary_row_matches_the_reference_forward_and_backward_at_awkward_sizes",
            "parity_elementwise::elementwise_backward_runs_on_the_gpu_and_matches_the_reference",
        ],
    ),
    (
        "a layout op (pixel_unshuffle)",
        &[
            "grad_shape::pixel_unshuffle_moves_each_block_into_channels_as_pytorch_does",
            "grad_shape::pixel_unshuffle_matches_finite_differences",
            "parity_concat::shape_op_backward_runs_on_the_gpu_and_matches_the_reference",
        ],
    ),
    (
        "a layer (nn::SiLU)",
        &["grad_nn_layers::activation_layers_match_finite_differences", "layers::silu_is_x_times_sigmoid_x"],
    ),
];

/// The `cargo test` commands of a page's "## Checklist" section, as words, with their line numbers.
fn checklist_test_commands(page: &str) -> Vec<(usize, Vec<String>)> {
    let start = page.find("\n## Checklist\n").expect("the page has a '## Checklist' section") + 1;
    let end = page[start..].find("\n## ").map_or(page.len(), |k| start + k);
    let before = page[..start].lines().count();
    code_lines(&page[start..end])
        .into_iter()
        .map(|(n, line)| (before + n, words(&line)))
        .filter(|(_, w)| w.len() >= 2 && w[0] == "cargo" && w[1] == "test")
        .collect()
}

/// The names `cargo test … -- --list` prints, one `module::test: test` line each.
fn listed_tests(stdout: &str) -> Vec<String> {
    stdout.lines().filter_map(|l| l.strip_suffix(": test")).map(str::to_string).collect()
}

/// Runs one checklist command with `--list` (no test runs; with `--workspace --release` it
/// reuses the full run's build) and returns the tests it lists, or what is wrong with it.
fn list(args: &[String]) -> Result<Vec<String>, String> {
    if let Some(p) = args.iter().find(|a| a.contains('<') || a.contains('…')) {
        return Err(format!("'{p}' is a placeholder: quote the example op's command"));
    }
    if !(args.iter().any(|a| a == "--workspace") && args.iter().any(|a| a == "--release")) {
        return Err("not `cargo test --workspace --release …`: a build other than the full run's".into());
    }
    let mut argv = args[1..].to_vec();
    if !argv.iter().any(|a| a == "--") {
        argv.push("--".into());
    }
    argv.push("--list".into());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let out = std::process::Command::new(cargo)
        .args(&argv)
        .current_dir(repository_root())
        .output()
        .map_err(|e| format!("cargo did not start: {e}"))?;
    if !out.status.success() {
        return Err(format!("{}\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(listed_tests(&String::from_utf8_lossy(&out.stdout)))
}

/// The checklist's commands run the tests its steps create: each command lists tests, each of
/// its filters matches one, and each example's tests are listed by a filtered command. Needs
/// the workspace's release test build (`cargo test --workspace --release` has made it; run
/// alone, the first command here builds it).
#[test]
fn the_op_checklists_commands_run_the_tests_its_steps_create() {
    let page = std::fs::read_to_string(repository_root().join(CHECKLIST_PAGE)).expect("the page is readable");
    let commands = checklist_test_commands(&page);
    let (mut failures, mut filtered) = (Vec::new(), Vec::new());
    if commands.len() <= EXAMPLES.len() {
        failures.push(format!(
            "{CHECKLIST_PAGE}: {} `cargo test` commands in its checklist, not one per kind and the full run",
            commands.len()
        ));
    }
    for (line_no, args) in &commands {
        let at = format!("{CHECKLIST_PAGE}:{line_no}: {}", args.join(" "));
        let listed = match list(args) {
            Ok(listed) => listed,
            Err(e) => {
                failures.push(format!("{at}\n  {e}"));
                continue;
            }
        };
        eprintln!("{at}: {} tests", listed.len());
        let filters: Vec<&String> = match args.iter().position(|a| a == "--") {
            Some(k) => args[k + 1..].iter().filter(|f| !f.starts_with('-')).collect(),
            None => vec![],
        };
        if listed.is_empty() {
            failures.push(format!("{at}\n  lists no test"));
        }
        for f in &filters {
            if !listed.iter().any(|t| t.contains(f.as_str())) {
                failures.push(format!("{at}\n  the filter '{f}' matches no test"));
            }
        }
        if !filters.is_empty() {
            filtered.extend(listed);
        }
    }
    for (kind, tests) in EXAMPLES {
        for test in tests.iter().filter(|t| !filtered.iter().any(|l| l == *t)) {
            failures.push(format!("{kind}: no filtered command of the checklist lists {test}"));
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_checklists_commands_are_found_and_their_listings_read() {
    let page = "# x\n```sh\ncargo test --release -- a\n```\n## Checklist\n\n```sh\ncargo fmt --all\n\
                cargo test --workspace --release --test integration -- grad_x \\\n  parity_x   # first\n\
                cargo test --workspace --release\n```\n## Next\n```sh\ncargo test -- b\n```\n";
    let found = checklist_test_commands(page);
    assert_eq!(found.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [9, 11]);
    assert_eq!(found[0].1[6..], ["--", "grad_x", "parity_x"].map(String::from));
    let stdout = "grad_x::a: test\nparity_x::b: test\n\n2 tests, 0 benchmarks\n";
    assert_eq!(listed_tests(stdout), ["grad_x::a", "parity_x::b"]);
    let other_build = list(&["cargo", "test", "--release", "-p", "gpu"].map(String::from));
    assert!(other_build.unwrap_err().contains("--workspace"));
    let placeholder = list(&["cargo", "test", "--workspace", "--release", "--", "grad_<op>"].map(String::from));
    assert!(placeholder.unwrap_err().contains("placeholder"));
}
