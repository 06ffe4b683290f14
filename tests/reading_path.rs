//! The reading path (docs/reading-path.md) says what it costs: each stop's line count is the
//! file's (or the item's: a function, a struct or enum, a method) own, the whole path stays
//! within what one sitting can read, README.md, docs/README.md and the page give its total as
//! the table adds it up, and both front doors (README.md and docs/README.md) link to it.

use std::fs;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The most lines the path may ask a newcomer to read.
const MOST_LINES: usize = 1_500;

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines of a stop: `file` (the whole file) or `file:item` (one item of it, see
/// [`lines_of_item`]).
fn lines_of(stop: &str) -> Result<usize, String> {
    let (file, item) = match stop.split_once(':') {
        Some((f, i)) => (f, Some(i)),
        None => (stop, None),
    };
    let text = fs::read_to_string(Path::new(ROOT).join(file)).map_err(|e| format!("{file}: {e}"))?;
    match item {
        None => Ok(text.lines().count()),
        Some(item) => lines_of_item(&text, item).map_err(|e| format!("{file}: {e}")),
    }
}

/// The visibilities an item may be declared with.
const VISIBILITY: [&str; 4] = ["", "pub ", "pub(crate) ", "pub(super) "];

/// Whether `line` (as written, indentation included) declares one of `kinds` named `name`:
/// `pub fn name(`, `fn name<T>(`, `pub(crate) struct Name {`, `pub trait Name {`.
fn declares(line: &str, kinds: &[&str], name: &str) -> bool {
    let name_follows = |rest: &str| {
        rest.strip_prefix(name).is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
    };
    VISIBILITY.iter().any(|vis| {
        kinds.iter().any(|kind| {
            line.strip_prefix(vis)
                .and_then(|l| l.strip_prefix(kind))
                .and_then(|l| l.strip_prefix(' '))
                .is_some_and(name_follows)
        })
    })
}

/// Whether `line` opens an `impl` block of `ty` (inherent, `impl Trait for Ty`, generic or not)
/// or declares `trait ty`, at column 0.
fn opens_block_of(line: &str, ty: &str) -> bool {
    if declares(line, &["trait"], ty) {
        return true;
    }
    let Some(rest) = line.strip_prefix("impl") else { return false };
    // `impl<T: Bound> …`: skip the generics.
    let rest = match rest.strip_prefix('<') {
        Some(generics) => {
            let mut depth = 1;
            let close = generics.char_indices().find(|&(_, c)| {
                depth += match c {
                    '<' => 1,
                    '>' => -1,
                    _ => 0,
                };
                depth == 0
            });
            match close {
                Some((i, _)) => &generics[i + 1..],
                None => return false,
            }
        }
        None => rest,
    };
    if !rest.starts_with(' ') {
        return false; // `implement…`, not `impl`
    }
    let self_ty = rest.rsplit_once(" for ").map_or(rest.trim_start(), |(_, ty)| ty);
    self_ty.strip_prefix(ty).is_some_and(|after| after.starts_with([' ', '<', '{']))
}

/// The lines of the item declared at `lines[start]`, indented by `pad`: to the first line at
/// that indentation that is `}` (a body or a struct's fields closing), or the declaring line
/// alone when it ends with `;` (`pub struct Id(usize);`, a trait's method without a body).
fn item_span(lines: &[&str], start: usize, pad: &str) -> Option<usize> {
    lines[start..]
        .iter()
        .enumerate()
        .position(|(i, l)| {
            let Some(l) = l.strip_prefix(pad) else { return false };
            l == "}" || (i == 0 && l.ends_with(';'))
        })
        .map(|end| end + 1)
}

/// The lines of one item of a Rust file's `text`, from the line that declares it to its
/// closing brace (the doc comment and attributes above it are not counted; anything inside
/// is). `name` is a top-level `fn`, `struct` or `enum` (closing with `}` at column 0);
/// `Type::name` is a `fn` of an `impl` block of `Type` (inherent or of a trait) or of
/// `trait Type`, indented by four spaces and closing with `}` at that indentation. An item
/// declared twice is an error, as is one never declared.
fn lines_of_item(text: &str, item: &str) -> Result<usize, String> {
    let lines: Vec<&str> = text.lines().collect();
    let one = |found: Vec<usize>, what: String| match found[..] {
        [only] => Ok(only),
        [] => Err(format!("declares no {what}")),
        _ => Err(format!("declares {what} {} times", found.len())),
    };
    let (start, pad) = match item.split_once("::") {
        None => {
            let found = (0..lines.len()).filter(|&i| declares(lines[i], &["fn", "struct", "enum"], item)).collect();
            (one(found, format!("top-level fn, struct or enum {item}"))?, "")
        }
        Some((ty, method)) => {
            let mut found = vec![];
            for open in (0..lines.len()).filter(|&i| opens_block_of(lines[i], ty)) {
                let Some(len) = item_span(&lines, open, "") else {
                    return Err(format!("the block at line {} never closes", open + 1));
                };
                found.extend(
                    (open + 1..open + len)
                        .filter(|&i| lines[i].strip_prefix("    ").is_some_and(|l| declares(l, &["fn"], method))),
                );
            }
            (one(found, format!("fn {method} in an impl of {ty} or trait {ty}"))?, "    ")
        }
    };
    item_span(&lines, start, pad).ok_or(format!("{item} never closes"))
}

/// (the stop's items, lines as written) for each row of the path's table:
/// `| # | `stop` | lines | … |`, or `| # | `stop`, `stop` | lines | … |` for a row whose
/// lines are those of several items together.
fn stops(page: &str) -> Vec<(Vec<String>, usize)> {
    page.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let items = items_of(cells.get(2)?)?;
            let lines = cells.get(3)?.replace(',', "").parse().ok()?;
            Some((items, lines))
        })
        .collect()
}

/// The items a table cell names: one code span, or several separated by ", ", and nothing else.
fn items_of(cell: &str) -> Option<Vec<String>> {
    cell.split(", ").map(|item| Some(item.strip_prefix('`')?.strip_suffix('`')?.to_string())).collect()
}

#[test]
fn every_stop_of_the_reading_path_has_the_line_count_it_states() {
    let page = read("docs/reading-path.md");
    let stops = stops(&page);
    assert!(stops.len() >= 6, "expected the path's table, found {} stops", stops.len());
    let wrong: Vec<String> = stops
        .iter()
        .filter_map(|(items, stated)| match items.iter().map(|item| lines_of(item)).sum::<Result<usize, String>>() {
            Ok(n) if n == *stated => None,
            Ok(n) => Some(format!("{}: the page says {stated} lines, it has {n}", items.join(", "))),
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

/// Each "about N lines" of `text` (line breaks read as spaces), N with its commas removed.
fn stated_totals(text: &str) -> Vec<usize> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| w[0] == "about" && w[2].starts_with("lines"))
        .filter_map(|w| w[1].replace(',', "").parse().ok())
        .collect()
}

#[test]
fn readme_the_docs_index_and_the_path_state_the_tables_total_rounded_to_the_nearest_hundred() {
    let (page, readme, index) = (read("docs/reading-path.md"), read("README.md"), read("docs/README.md"));
    let total: usize = stops(&page).iter().map(|(_, n)| n).sum();
    let rounded = (total + 50) / 100 * 100;
    for (name, text) in [("docs/reading-path.md", &page), ("README.md", &readme), ("docs/README.md", &index)] {
        let stated = stated_totals(text);
        assert!(!stated.is_empty(), "{name} states no \"about N lines\"");
        assert!(
            stated.iter().all(|&n| n == rounded),
            "{name} says about {stated:?} lines; the path's table adds up to {total}, about {rounded}"
        );
    }
}

#[test]
fn a_row_naming_several_items_counts_them_together() {
    let page =
        "| 1 | `a.rs` | 3 | one |\n| 2 | `a.rs:f`, `b.rs:T::g` | 9 | two |\n| 3 | `a.rs:f` and more | 1 | not a stop |";
    let rows = stops(page);
    assert_eq!(rows, vec![(vec!["a.rs".into()], 3), (vec!["a.rs:f".into(), "b.rs:T::g".into()], 9)]);
}

#[test]
fn a_stated_total_is_read_across_a_line_break_and_with_its_comma() {
    assert_eq!(stated_totals("the stack in about 1,400\nlines, then about 90 lines more"), vec![1_400, 90]);
    assert_eq!(stated_totals("about a thousand lines; 1,000 lines"), Vec::<usize>::new());
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

/// A file with every kind of item a stop can name, and the traps around them.
const ITEMS: &str = "\
/// A doc comment: not counted.
#[derive(Clone)]
pub struct Geometry {
    /// Inside: counted.
    pub h: usize,
    pub w: usize,
}

pub(crate) struct Id(usize);

enum Mode {
    Nearest,
    Bilinear,
}

fn area<T>(g: &Geometry) -> usize {
    g.h * g.w
}

impl Geometry {
    /// Not counted either.
    pub fn area(&self) -> usize {
        self.h * self.w
    }

    fn transposed(
        &self,
    ) -> Geometry {
        Geometry { h: self.w, w: self.h }
    }

    pub fn len(&self) -> usize {
        self.w
    }
}

pub trait Shape {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shape for Geometry {
    fn len(&self) -> usize {
        self.h
    }
}

impl<'a, T: Into<Vec<u8>>> Shape for Id {
    fn len(&self) -> usize {
        self.0
    }
}

mod tests {
    fn area() {}
}
";

#[test]
fn a_stop_naming_a_struct_or_enum_counts_it_from_its_declaring_line_to_its_closing_brace() {
    assert_eq!(lines_of_item(ITEMS, "Geometry"), Ok(5), "fields and their docs count, the doc and derive above do not");
    assert_eq!(lines_of_item(ITEMS, "Id"), Ok(1), "a tuple struct is one line");
    assert_eq!(lines_of_item(ITEMS, "Mode"), Ok(4));
    assert_eq!(lines_of_item(ITEMS, "area"), Ok(3), "the top-level fn, not the method or the test's");
    assert!(lines_of_item(ITEMS, "Geo").is_err(), "a prefix of a name is not the name");
    assert!(lines_of_item(ITEMS, "Shape").is_err(), "a trait is not counted whole");
}

#[test]
fn a_stop_naming_a_method_counts_that_method_of_that_type_only() {
    assert_eq!(lines_of_item(ITEMS, "Geometry::area"), Ok(3));
    assert_eq!(lines_of_item(ITEMS, "Geometry::transposed"), Ok(5), "a signature over several lines");
    assert_eq!(lines_of_item(ITEMS, "Shape::is_empty"), Ok(3), "a trait's provided method");
    assert_eq!(lines_of_item(ITEMS, "Shape::len"), Ok(1), "a trait's method without a body");
    assert_eq!(lines_of_item(ITEMS, "Id::len"), Ok(3), "a method of a generic impl of a trait for the type");
    let twice = lines_of_item(ITEMS, "Geometry::len").unwrap_err();
    assert!(twice.contains("2 times"), "Geometry has two `len`s, its own and Shape's: {twice}");
    assert!(lines_of_item(ITEMS, "Id::area").is_err(), "area is Geometry's");
    assert!(lines_of_item(ITEMS, "Geometry::h").is_err(), "a field is not a method");
}

#[test]
fn the_readme_stays_short_and_teaches_before_it_measures() {
    let readme = read("README.md");
    assert!(readme.len() <= 12_000, "README.md is {} bytes, more than 12,000", readme.len());
    let at = |heading: &str| readme.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no ## {heading}"));
    assert!(at("Learn") < at("Performance"), "README.md shows Performance before Learn");
}
