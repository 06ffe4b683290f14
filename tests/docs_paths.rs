//! Every repository path the docs mention exists, and every item they name is defined there.
//!
//! The rule, for README.md, docs/*.md and docs/notebooks/*.md outside fenced code blocks: an inline code span
//! (`…`) is a *repository path* when it has no whitespace, contains a `/`, and its first
//! component is an entry of the repository root (`tensor`, `shaders`, `docs`, …). Such a
//! path must exist. It may name an item after it with `:` or `::`, as in
//! `autograd/src/graph.rs:backward` or `autograd/src/var.rs::Var::backward`; then every
//! `::`-separated segment must be defined in the file (`fn`, `struct`, `enum`, `trait`,
//! `impl`, `const`, `static`, `type`, `mod` or `var` followed by the name, generic brackets
//! `<…>` ignored; `var` is WGSL's).
//! A path may hold one wildcard in its last component, `*` or a `<placeholder>`
//! (`tests/grad_*.rs`, `tests/parity_<op>.rs`); then at least one file must match it.
//! Paths that are not in the repository (`/usr/share/…`, `runs/…`, `../elsewhere/…`) are not
//! checked because their first component is not a root entry.

use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The markdown files the rule applies to: README.md, docs/*.md and the notebooks beside them,
/// docs/notebooks/*.md.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![Path::new(ROOT).join("README.md")];
    for dir in ["docs", "docs/notebooks"] {
        if let Ok(entries) = fs::read_dir(Path::new(ROOT).join(dir)) {
            let mut md: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect();
            md.sort();
            files.extend(md);
        }
    }
    files
}

/// Names of the entries at the repository root (`tensor`, `Cargo.toml`, …), without dot-files
/// and without the root entries .gitignore names (`runs/`, `/target`): those are outputs a
/// run creates, not repository paths.
fn root_entries() -> Vec<String> {
    let gitignore = fs::read_to_string(Path::new(ROOT).join(".gitignore")).unwrap_or_default();
    let ignored: Vec<&str> = gitignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    fs::read_dir(ROOT)
        .expect("the repository root is readable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && !ignored.contains(&n.as_str()))
        .collect()
}

/// Inline code spans of one line (text between single backticks).
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// Splits `path:item` or `path::item::item` into the path and the item segments.
fn split_item(span: &str) -> (&str, Vec<&str>) {
    match span.find(':') {
        Some(i) => {
            let items = span[i..].trim_start_matches(':').split("::").filter(|s| !s.is_empty()).collect();
            (&span[..i], items)
        }
        None => (span, vec![]),
    }
}

/// Whether `name` is defined in `source` by one of the definition keywords.
fn defines(source: &str, name: &str) -> bool {
    const KEYWORDS: [&str; 10] = ["fn", "struct", "enum", "trait", "impl", "const", "static", "type", "mod", "var"];
    source.lines().any(|line| {
        let line = without_angle_brackets(line);
        let words: Vec<&str> =
            line.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
        words.windows(2).any(|w| KEYWORDS.contains(&w[0]) && w[1] == name)
    })
}

/// `line` without what is between `<` and `>`, so `var<workgroup> a_tile` and
/// `impl<T: Float> Kernel<T>` read as `var a_tile` and `impl Kernel`.
fn without_angle_brackets(line: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether a pattern like `tests/grad_*.rs` or `tests/parity_<op>.rs` (one wildcard, `*` or a
/// `<placeholder>`, in the last component) matches at least one file.
fn pattern_matches_a_file(pattern: &str) -> bool {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let name = match (name.find('<'), name.find('>')) {
        (Some(a), Some(b)) if a < b => format!("{}*{}", &name[..a], &name[b + 1..]),
        _ => name.to_string(),
    };
    let Some((prefix, suffix)) = name.split_once('*') else { return false };
    let Ok(entries) = fs::read_dir(Path::new(ROOT).join(dir)) else { return false };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .any(|f| f.len() >= prefix.len() + suffix.len() && f.starts_with(prefix) && f.ends_with(suffix))
}

/// Every broken reference of one markdown text, as "file:line: message".
fn broken_references(doc_name: &str, text: &str, roots: &[String]) -> Vec<String> {
    let mut broken = vec![];
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        for span in code_spans(line) {
            let (path, items) = split_item(span);
            let first = path.split('/').next().unwrap_or("");
            if span.contains(char::is_whitespace) || !path.contains('/') || !roots.iter().any(|r| r == first) {
                continue;
            }
            if path.contains(['*', '<']) {
                if !pattern_matches_a_file(path) {
                    broken.push(format!("{doc_name}:{}: `{span}`: no file matches {path}", n + 1));
                }
                continue;
            }
            let full = Path::new(ROOT).join(path);
            if !full.exists() {
                broken.push(format!("{doc_name}:{}: `{span}`: {path} does not exist", n + 1));
                continue;
            }
            if items.is_empty() {
                continue;
            }
            let source = fs::read_to_string(&full).unwrap_or_default();
            for item in items {
                if !defines(&source, item) {
                    broken.push(format!("{doc_name}:{}: `{span}`: {path} does not define `{item}`", n + 1));
                }
            }
        }
    }
    broken
}

#[test]
fn every_path_and_item_named_in_the_docs_exists() {
    let roots = root_entries();
    let mut broken = vec![];
    let mut checked_files = 0;
    for file in doc_files() {
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.strip_prefix(ROOT).unwrap_or(&file).display().to_string();
        broken.extend(broken_references(name.trim_start_matches('/'), &text, &roots));
        checked_files += 1;
    }
    assert!(checked_files >= 2, "expected README.md and the docs/ pages, found {checked_files} files");
    assert!(broken.is_empty(), "{} broken reference(s) in the docs:\n  {}", broken.len(), broken.join("\n  "));
}

#[test]
fn the_rule_catches_a_missing_path_a_missing_item_and_skips_what_is_not_a_repository_path() {
    let roots = root_entries();
    let text = "\
see `tensor/src/ops/conv2d.rs` and `autograd/src/graph.rs:backward`
and `autograd/src/var.rs::Var::backward`, `shaders/matmul.wgsl::a_tile`
broken: `tensor/src/ops/no_such_op.rs`, patterns `tests/grad_*.rs` `tests/nothing_<op>.rs`
wrong item: `autograd/src/graph.rs:no_such_function`
not checked: `/usr/share/datasets/fashion-mnist`, `runs/conv-dsprites-0/`, `cpu/`, `a b/c`
```
`tensor/src/inside_a_fence.rs`
```
";
    let broken = broken_references("example.md", text, &roots);
    assert_eq!(
        broken,
        [
            "example.md:3: `tensor/src/ops/no_such_op.rs`: tensor/src/ops/no_such_op.rs does not exist",
            "example.md:3: `tests/nothing_<op>.rs`: no file matches tests/nothing_<op>.rs",
            "example.md:4: `autograd/src/graph.rs:no_such_function`: autograd/src/graph.rs does not define \
             `no_such_function`",
        ]
    );
}

// ---------------------------------------------------------------- quoted code

/// The code of a quoted line: without the `// annotation` a doc adds after it, trimmed.
fn quoted_code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => line[..i].trim(),
        None => line.trim(),
    }
}

/// Every quoted line of a fenced block that names its file (a first line `// path/to/file.rs…`
/// or `# path/to/file.py…`) which does not appear in that file, as "doc:line: message".
/// A quoted line matches when its code (annotation stripped) is part of one line of the file;
/// `...` lines elide code and blank or comment-only lines are not checked.
fn stale_quotes(doc_name: &str, text: &str, roots: &[String]) -> Vec<String> {
    let mut stale = vec![];
    let mut source: Option<(String, String)> = None; // (path, contents) of the current block
    let mut in_fence = false;
    let mut first_line = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            first_line = in_fence;
            source = None;
            continue;
        }
        if !in_fence {
            continue;
        }
        if first_line {
            first_line = false;
            let header = line.trim().trim_start_matches("//").trim_start_matches('#').trim();
            let path = header.split([',', ' ', ':']).next().unwrap_or("");
            let first = path.split('/').next().unwrap_or("");
            if path.contains('/') && roots.iter().any(|r| r == first) {
                match fs::read_to_string(Path::new(ROOT).join(path)) {
                    Ok(contents) => source = Some((path.to_string(), contents)),
                    Err(_) => stale.push(format!("{doc_name}:{}: quotes {path}, which does not exist", n + 1)),
                }
            }
            continue;
        }
        let Some((path, contents)) = &source else { continue };
        let code = quoted_code(line);
        if code.is_empty() || code == "..." || code.starts_with("...") {
            continue;
        }
        if !contents.lines().any(|l| l.contains(code)) {
            stale.push(format!("{doc_name}:{}: `{code}` is not in {path}", n + 1));
        }
    }
    stale
}

#[test]
fn every_quoted_line_of_code_is_in_the_file_it_names() {
    let roots = root_entries();
    let mut stale = vec![];
    for file in doc_files() {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let name = file.strip_prefix(ROOT).unwrap_or(&file).display().to_string();
        stale.extend(stale_quotes(&name, &text, &roots));
    }
    assert!(stale.is_empty(), "quoted code that is not in its file:\n{}", stale.join("\n"));
}

#[test]
fn the_quote_rule_catches_a_changed_line_and_ignores_annotations_and_elisions() {
    let roots = root_entries();
    let doc =
        "```rust\n// autograd/src/graph.rs, backward\nfor v in order.into_iter().rev() { // annotation\n    ...\n```\n";
    assert!(stale_quotes("doc.md", doc, &roots).is_empty(), "{:?}", stale_quotes("doc.md", doc, &roots));
    let stale = "```rust\n// autograd/src/graph.rs, backward\nfor v in order.iter().rev() {\n```\n";
    assert_eq!(stale_quotes("doc.md", stale, &roots).len(), 1);
    let unnamed = "```rust\nlet anything = 1;\n```\n";
    assert!(stale_quotes("doc.md", unnamed, &roots).is_empty());
}
