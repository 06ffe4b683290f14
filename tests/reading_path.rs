//! The reading path (docs/reading-path.md) says what it costs: each stop's line count is the
//! file's (or the function's) own, the whole path stays within what one sitting can read,
//! and both front doors (README.md and docs/README.md) link to it.

use std::fs;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The most lines the path may ask a newcomer to read.
const MOST_LINES: usize = 1_500;

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines of `file` (a whole file), or of `file:function`: from the line that declares
/// the top-level function to its closing brace.
fn lines_of(stop: &str) -> Result<usize, String> {
    let (file, item) = match stop.split_once(':') {
        Some((f, i)) => (f, Some(i)),
        None => (stop, None),
    };
    let text = fs::read_to_string(Path::new(ROOT).join(file)).map_err(|e| format!("{file}: {e}"))?;
    let Some(item) = item else { return Ok(text.lines().count()) };
    let lines: Vec<&str> = text.lines().collect();
    let declares = |l: &&str| l.starts_with(&format!("pub fn {item}(")) || l.starts_with(&format!("fn {item}("));
    let start = lines.iter().position(declares).ok_or(format!("{file} declares no top-level fn {item}"))?;
    let end = lines[start..].iter().position(|l| *l == "}").ok_or(format!("{file}: {item} never closes"))?;
    Ok(end + 1)
}

/// (stop, lines as written) for each row of the path's table: `| # | `stop` | lines | … |`.
fn stops(page: &str) -> Vec<(String, usize)> {
    page.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let stop = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            let lines = cells.get(3)?.replace(',', "").parse().ok()?;
            Some((stop.to_string(), lines))
        })
        .collect()
}

#[test]
fn every_stop_of_the_reading_path_has_the_line_count_it_states() {
    let page = read("docs/reading-path.md");
    let stops = stops(&page);
    assert!(stops.len() >= 6, "expected the path's table, found {} stops", stops.len());
    let wrong: Vec<String> = stops
        .iter()
        .filter_map(|(stop, stated)| match lines_of(stop) {
            Ok(n) if n == *stated => None,
            Ok(n) => Some(format!("{stop}: the page says {stated} lines, it has {n}")),
            Err(e) => Some(e),
        })
        .collect();
    assert!(wrong.is_empty(), "docs/reading-path.md is out of date:\n  {}", wrong.join("\n  "));
}

#[test]
fn the_reading_path_fits_one_sitting() {
    let total: usize = stops(&read("docs/reading-path.md")).iter().map(|(_, n)| n).sum();
    assert!(total <= MOST_LINES, "the reading path is {total} lines, more than {MOST_LINES}");
}

#[test]
fn readme_and_the_docs_index_link_to_the_reading_path() {
    for (page, link) in [("README.md", "docs/reading-path.md"), ("docs/README.md", "reading-path.md")] {
        assert!(read(page).contains(&format!("]({link})")), "{page} does not link to {link}");
    }
}

#[test]
fn a_stop_naming_a_function_counts_that_function_only() {
    assert_eq!(lines_of("vae/src/train.rs:plain_train_step"), Ok(13));
    assert!(lines_of("vae/src/train.rs:no_such_step").is_err());
}

#[test]
fn the_readme_stays_short_and_teaches_before_it_measures() {
    let readme = read("README.md");
    assert!(readme.len() <= 12_000, "README.md is {} bytes, more than 12,000", readme.len());
    let at = |heading: &str| readme.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no ## {heading}"));
    assert!(at("Learn") < at("Performance"), "README.md shows Performance before Learn");
}
