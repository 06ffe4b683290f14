//! A study: the grid of `train` runs behind a paper's claim, as one file (`vae/studies/NAME.toml`),
//! checked whole before anything runs or is submitted.
//!
//! ```toml
//! name = "beta-z"                 # the sweep's folder under root (default: the file's name)
//! root = "runs/sweeps"            # where sweeps are written (default runs/sweeps)
//! description = "β and z on Fashion-MNIST"
//! seeds = [0, 1]                  # the last axis, `seed`
//! point-name = "b{beta}-z{z-dim}-s{seed}"  # each point's folder (default: beta=0_z-dim=10_seed=0)
//!
//! [train]                         # the `train` flags every point shares
//! arch = "dense"
//! dataset = "fashion-mnist"
//! epochs = 4
//! stratified = true               # a switch: `--stratified`
//!
//! [grid]                          # the axes, in order (the last varies fastest)
//! beta = [0, 1, 2, 4]             # one flag, its values
//! z-dim = [10, 32]
//! [grid.objective]                # or named settings of several flags each
//! vae = { loss = "beta-tcvae", alpha = 6, gamma = 6 }
//! tcvae = { loss = "beta-tcvae", alpha = 1, gamma = 1 }
//!
//! [eval]                          # `eval`'s flags, run on each point after training
//! what = "metrics,samples"
//! seed = "{seed}"                 # {AXIS}: the point's value of that axis
//!
//! [summary]
//! columns = ["val_loss", "val_recon", "test_loss"]   # what `sweep collect` tabulates
//!
//! [slurm]                         # default `--slurm-opt`s
//! time = "02:00:00"
//! ```
//!
//! A `--grid` sweep is the same [`Study`], made from its flags ([`Study::from_grid`]). Every
//! point's `train` and `eval` command is parsed by those binaries' own parsers and its run
//! configuration checked as `train` checks it, so an unknown flag, a malformed value, a
//! duplicate axis, an empty grid, or a run folder holding another configuration is an error
//! naming the file, the key and the point before a single point runs.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

use crate::cli::{EvalCli, TrainCli};
use crate::error::{Error, Result};
use crate::runs::RunConfig;

/// Where sweeps are written unless the study or `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "runs/sweeps";
/// The copy of the study a sweep keeps in its folder: what its points' jobs read.
pub const SNAPSHOT_FILE: &str = "study.toml";
/// The name of the axis `seeds = [...]` adds.
const SEED_AXIS: &str = "seed";
/// The most points a study holds: a hundred times the largest grid of the papers here, and
/// few enough that checking every point's flags takes seconds.
pub const MAX_POINTS: usize = 10_000;
/// `train` flags a sweep sets itself for each point.
const OWNED_TRAIN_FLAGS: [&str; 2] = ["run-dir", "resume"];
/// `eval` flags a sweep sets itself for each point.
const OWNED_EVAL_FLAGS: [&str; 1] = ["run"];
/// The keys a study file may have at its top level.
const TOP_LEVEL_KEYS: [&str; 10] =
    ["name", "root", "description", "seeds", "point-name", "train", "grid", "eval", "summary", "slurm"];
/// The summary's columns unless the study names others: the best epoch's validation loss and terms.
pub const DEFAULT_COLUMNS: [&str; 6] = ["val_loss", "val_recon", "val_kl", "val_mi", "val_tc", "val_dwkl"];

/// One flag of a command: `--name value`, or `--name` alone for a switch.
#[derive(Clone, Debug, PartialEq)]
pub struct Flag {
    /// Where it was set, for errors: `train.beta`, `grid.objective.vae.alpha`, `--grid beta=0,1`.
    pub key: String,
    /// The flag's long name without `--`.
    pub name: String,
    /// Its value; `None` for a switch (`--stratified`).
    pub value: Option<String>,
}

/// One value of an axis: a label (the folder name's part) and the flags it sets.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisValue {
    /// `4` for `beta = [0, 4]`, `vae` for `[grid.objective] vae = {...}`.
    pub label: String,
    /// The flags this value sets (one for a plain axis).
    pub flags: Vec<Flag>,
}

/// One axis of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// The axis's name: the flag of a plain axis, the table's name of a named one.
    pub name: String,
    /// Its values, in order.
    pub values: Vec<AxisValue>,
}

/// A study, read and checked: what every point trains and how it is evaluated and summarised.
#[derive(Clone, Debug, PartialEq)]
pub struct Study {
    /// The file it was read from, or a description of the flags it was made from (for errors).
    pub source: String,
    /// The sweep's name: its folder under `root`.
    pub name: String,
    /// Where the sweep's folder is.
    pub root: PathBuf,
    /// What the study is for (shown in the summary).
    pub description: String,
    /// The `train` flags every point shares.
    pub train: Vec<Flag>,
    /// The axes, in order; the last varies fastest.
    pub axes: Vec<Axis>,
    /// The template of a point's folder name (`{AXIS}` replaced), or `None` for `axis=value_...`.
    pub point_name: Option<String>,
    /// `eval`'s flags, run on every point after training; `None`: no evaluation.
    pub eval: Option<Vec<Flag>>,
    /// The summary table's columns (each a key of `eval/metrics.json`, a column of
    /// `metrics.csv`'s best epoch, or a number of `config.json`).
    pub columns: Vec<String>,
    /// Default Slurm options (`--slurm-opt` adds to and overrides them), as KEY and VALUE.
    pub slurm: Vec<(String, Option<String>)>,
}

/// One point of a study: one `train` run in its own folder, then its `eval`.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Its place in the grid, from 0: the Slurm array task that runs it.
    pub index: usize,
    /// Its folder's name.
    pub name: String,
    /// Its run folder.
    pub dir: PathBuf,
    /// The axes' labels at this point, as (axis, label).
    pub labels: Vec<(String, String)>,
    /// The `train` flags of the point (shared ones first), without `--run-dir`.
    pub train_flags: Vec<Flag>,
    /// The `eval` flags of the point, placeholders replaced, without `--run`.
    pub eval_flags: Option<Vec<Flag>>,
}

impl Point {
    /// "3 (beta=1_seed=0)": how errors and progress lines name the point.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.index, self.name)
    }

    /// `train`'s arguments for a new run of this point.
    pub fn train_args(&self) -> Vec<String> {
        let mut args = flags_to_args(&self.train_flags);
        args.push("--run-dir".into());
        args.push(self.dir.display().to_string());
        args
    }

    /// `eval`'s arguments, or `None` when the study evaluates nothing.
    pub fn eval_args(&self) -> Option<Vec<String>> {
        let flags = self.eval_flags.as_ref()?;
        let mut args = vec!["--run".to_string(), self.dir.display().to_string()];
        args.extend(flags_to_args(flags));
        Some(args)
    }

    /// Whether the point's own flags set `name` (e.g. `threads`).
    pub fn sets_train_flag(&self, name: &str) -> bool {
        self.train_flags.iter().any(|f| f.name == name)
    }
}

/// `--name value` for each flag, `--name` for a switch, and `--name=value` for a value that
/// starts with `-` (which a parser would take for a flag: `--beta=-5`, `--logvar-clamp=-30,20`).
pub fn flags_to_args(flags: &[Flag]) -> Vec<String> {
    let mut args = vec![];
    for flag in flags {
        match &flag.value {
            Some(value) if value.starts_with('-') => args.push(format!("--{}={value}", flag.name)),
            Some(value) => args.extend([format!("--{}", flag.name), value.clone()]),
            None => args.push(format!("--{}", flag.name)),
        }
    }
    args
}

/// Which binary a flag belongs to: its parser knows its flags and which of them are switches.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Binary {
    Train,
    Eval,
}

impl Binary {
    fn name(self) -> &'static str {
        match self {
            Binary::Train => "train",
            Binary::Eval => "eval",
        }
    }

    /// `Some(true)` when `--flag` takes a value, `Some(false)` for a switch, `None` when the
    /// binary has no such flag.
    fn takes_value(self, flag: &str) -> Option<bool> {
        let command = match self {
            Binary::Train => TrainCli::command(),
            Binary::Eval => EvalCli::command(),
        };
        let arg = command.get_arguments().find(|a| a.get_long() == Some(flag))?;
        Some(arg.get_action().takes_values())
    }

    fn owned(self) -> &'static [&'static str] {
        match self {
            Binary::Train => &OWNED_TRAIN_FLAGS,
            Binary::Eval => &OWNED_EVAL_FLAGS,
        }
    }
}

/// The error for `key` of the study read from `source`.
fn bad(source: &str, key: &str, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{source}: {key}: {why}"))
}

/// A TOML value as a flag's value: strings as they are, numbers as written, a list of numbers
/// as `a,b` (`logvar-clamp = [-30, 20]`); `None` for a table or a nested list.
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| if v.is_array() { None } else { scalar_text(v) })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

/// The flag `name = value` of `binary`, set at `key`: `None` for a switch set to false.
fn flag(source: &str, binary: Binary, key: &str, name: &str, value: &toml::Value) -> Result<Option<Flag>> {
    if binary.owned().contains(&name) {
        return Err(bad(source, key, format!("--{name} is set by the sweep for each point; leave it out")));
    }
    let takes_value = binary.takes_value(name).ok_or_else(|| {
        bad(source, key, format!("{} has no flag --{name} (`{} --help` lists them)", binary.name(), binary.name()))
    })?;
    let text = scalar_text(value)
        .ok_or_else(|| bad(source, key, format!("expected a string, number, boolean or list of them, not {value}")))?;
    if takes_value {
        return Ok(Some(Flag { key: key.to_string(), name: name.to_string(), value: Some(text) }));
    }
    match value {
        toml::Value::Boolean(true) => Ok(Some(Flag { key: key.to_string(), name: name.to_string(), value: None })),
        toml::Value::Boolean(false) => Ok(None),
        other => Err(bad(source, key, format!("--{name} is a switch: expected true or false, not {other}"))),
    }
}

/// The flags of a table (`[train]`, `[eval]`, a named axis value), in the file's order.
fn flags_of(source: &str, binary: Binary, prefix: &str, table: &toml::Value) -> Result<Vec<Flag>> {
    let table = table.as_table().ok_or_else(|| bad(source, prefix, "expected a table of flags"))?;
    let mut flags = vec![];
    for (name, value) in table {
        if let Some(f) = flag(source, binary, &format!("{prefix}.{name}"), name, value)? {
            flags.push(f);
        }
    }
    Ok(flags)
}

/// The axis `name`, set at `key` (`grid.beta`, or `seeds`): `[values]` or a table of named
/// settings.
fn axis(source: &str, key: &str, name: &str, value: &toml::Value) -> Result<Axis> {
    let values = match value {
        toml::Value::Array(items) => {
            let mut values = vec![];
            for (i, item) in items.iter().enumerate() {
                let Some(f) = flag(source, Binary::Train, &format!("{key}[{i}]"), name, item)? else {
                    return Err(bad(source, key, "a switch axis takes true, not false (leave the flag out instead)"));
                };
                let label = f.value.clone().unwrap_or_else(|| "true".into());
                values.push(AxisValue { label, flags: vec![f] });
            }
            values
        }
        toml::Value::Table(settings) => settings
            .iter()
            .map(|(label, flags)| {
                Ok(AxisValue {
                    label: label.clone(),
                    flags: flags_of(source, Binary::Train, &format!("{key}.{label}"), flags)?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
        other => {
            return Err(bad(
                source,
                key,
                format!("expected a list of values or a table of named settings, not {other}"),
            ))
        }
    };
    if values.is_empty() {
        return Err(bad(source, key, "an axis needs at least one value"));
    }
    Ok(Axis { name: name.to_string(), values })
}

fn string_of(source: &str, key: &str, value: &toml::Value) -> Result<String> {
    value.as_str().map(str::to_string).ok_or_else(|| bad(source, key, format!("expected a string, not {value}")))
}

impl Study {
    /// Reads the study in `path` (a study file, or a sweep's folder, whose `study.toml` is
    /// read); `root` overrides the file's. Refuses what [`Study::check`] refuses.
    pub fn read(path: &Path, root: Option<&Path>) -> Result<Study> {
        let file = if path.is_dir() { path.join(SNAPSHOT_FILE) } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            let what = if path.is_dir() {
                "a sweep's folder without its study.toml"
            } else {
                "no such study file or sweep folder"
            };
            Error::Config(format!("--study {}: {what} ({e})", path.display()))
        })?;
        let stem = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let mut study = Study::parse(&file.display().to_string(), &stem, &text)?;
        if let Some(root) = root {
            study.root = root.to_path_buf();
        }
        study.root = std::path::absolute(&study.root)
            .map_err(|e| Error::Config(format!("{}: root {}: {e}", study.source, study.root.display())))?;
        study.check()?;
        Ok(study)
    }

    /// Parses a study file's text (`source` names it in errors, `stem` is the default name).
    pub fn parse(source: &str, stem: &str, text: &str) -> Result<Study> {
        let doc: toml::Table = text.parse().map_err(|e| Error::Config(format!("{source}: {e}")))?;
        if let Some(key) = doc.keys().find(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
            return Err(bad(source, key, format!("unknown key (a study has {})", TOP_LEVEL_KEYS.join(", "))));
        }
        let text_of = |key: &str| doc.get(key).map(|v| string_of(source, key, v)).transpose();
        let name = text_of("name")?.unwrap_or_else(|| stem.to_string());
        let root = PathBuf::from(text_of("root")?.unwrap_or_else(|| DEFAULT_ROOT.to_string()));
        let description = text_of("description")?.unwrap_or_default();
        let point_name = text_of("point-name")?;
        let train = match doc.get("train") {
            Some(table) => flags_of(source, Binary::Train, "train", table)?,
            None => vec![],
        };
        let mut axes = vec![];
        if let Some(grid) = doc.get("grid") {
            let grid = grid.as_table().ok_or_else(|| bad(source, "grid", "expected a table of axes"))?;
            for (name, value) in grid {
                axes.push(axis(source, &format!("grid.{name}"), name, value)?);
            }
        }
        if let Some(seeds) = doc.get("seeds") {
            if axes.iter().any(|a| a.name == SEED_AXIS) {
                return Err(bad(source, "seeds", "duplicate axis: grid.seed is the same axis"));
            }
            axes.push(axis(source, "seeds", SEED_AXIS, seeds)?);
        }
        let eval = doc.get("eval").map(|table| flags_of(source, Binary::Eval, "eval", table)).transpose()?;
        let columns = match doc.get("summary") {
            None => DEFAULT_COLUMNS.map(String::from).to_vec(),
            Some(summary) => {
                let summary = summary.as_table().ok_or_else(|| bad(source, "summary", "expected a table"))?;
                if let Some(key) = summary.keys().find(|k| *k != "columns") {
                    return Err(bad(source, &format!("summary.{key}"), "unknown key (the summary has columns)"));
                }
                match summary.get("columns") {
                    None => DEFAULT_COLUMNS.map(String::from).to_vec(),
                    Some(toml::Value::Array(items)) if !items.is_empty() => {
                        items.iter().map(|v| string_of(source, "summary.columns", v)).collect::<Result<Vec<_>>>()?
                    }
                    Some(other) => {
                        return Err(bad(
                            source,
                            "summary.columns",
                            format!("expected a list of column names, not {other}"),
                        ))
                    }
                }
            }
        };
        let mut slurm = vec![];
        if let Some(table) = doc.get("slurm") {
            let table = table.as_table().ok_or_else(|| bad(source, "slurm", "expected a table of sbatch options"))?;
            for (key, value) in table {
                let option = match value {
                    toml::Value::Boolean(true) => None,
                    v => Some(scalar_text(v).ok_or_else(|| bad(source, &format!("slurm.{key}"), "expected a value"))?),
                };
                slurm.push((key.clone(), option));
            }
        }
        Ok(Study { source: source.to_string(), name, root, description, train, axes, point_name, eval, columns, slurm })
    }

    /// A `--grid` sweep as a study: `name`, axes `FLAG=V1,V2,...`, and the `train` arguments
    /// every point shares (as typed after `--`).
    pub fn from_grid(name: &str, root: &Path, grid: &[String], train_args: &[String]) -> Result<Study> {
        let source = format!("sweep --name {name}");
        let mut axes = vec![];
        for spec in grid {
            let key = format!("--grid {spec}");
            let (flag_name, values) = spec.split_once('=').ok_or_else(|| {
                Error::Config(format!("--grid '{spec}': expected FLAG=V1,V2,... (e.g. beta=0,1,2,4)"))
            })?;
            let flag_name = flag_name.trim().trim_start_matches("--");
            let values: Vec<&str> = values.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
            if flag_name.is_empty() || values.is_empty() {
                return Err(Error::Config(format!("--grid '{spec}': needs a flag name and at least one value")));
            }
            // The same axis as a study file's `flag = ["v1", "v2"]`.
            let list = toml::Value::Array(values.iter().map(|v| toml::Value::String(v.to_string())).collect());
            axes.push(axis(&source, &key, flag_name, &list)?);
        }
        let train = flags_from_args(&source, train_args)?;
        let study = Study {
            source,
            name: name.to_string(),
            root: std::path::absolute(root).map_err(|e| Error::Config(format!("--root {}: {e}", root.display())))?,
            description: String::new(),
            train,
            axes,
            point_name: None,
            eval: None,
            columns: DEFAULT_COLUMNS.map(String::from).to_vec(),
            slurm: vec![],
        };
        study.check()?;
        Ok(study)
    }

    /// The sweep's folder.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    /// Every point, in grid order (the last axis varying fastest). A grid of more than
    /// [`MAX_POINTS`] points is refused before any is made.
    pub fn points(&self) -> Result<Vec<Point>> {
        let count = self.axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.values.len()));
        if count.is_none_or(|n| n > MAX_POINTS) {
            let count = count.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
            return Err(bad(
                &self.source,
                "grid",
                format!("{} axes make {count} points; a study holds at most {MAX_POINTS}", self.axes.len()),
            ));
        }
        let mut combinations: Vec<Vec<(&Axis, &AxisValue)>> = vec![vec![]];
        for axis in &self.axes {
            combinations = combinations
                .into_iter()
                .flat_map(|c| {
                    axis.values.iter().map(move |v| {
                        let mut next = c.clone();
                        next.push((axis, v));
                        next
                    })
                })
                .collect();
        }
        let mut points = vec![];
        for (index, combination) in combinations.into_iter().enumerate() {
            let labels: Vec<(String, String)> =
                combination.iter().map(|(a, v)| (a.name.clone(), v.label.clone())).collect();
            let name = match &self.point_name {
                Some(template) => self.fill(template, "point-name", &labels)?,
                None => default_point_name(&labels),
            };
            if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
                return Err(bad(
                    &self.source,
                    "point-name",
                    format!("point {index} would be named {name:?}: not a folder name"),
                ));
            }
            let mut train_flags = self.train.clone();
            for (_, value) in &combination {
                train_flags.extend(value.flags.iter().cloned());
            }
            let eval_flags = match &self.eval {
                None => None,
                Some(flags) => Some(
                    flags
                        .iter()
                        .map(|f| {
                            let value = f.value.as_ref().map(|v| self.fill(v, &f.key, &labels)).transpose()?;
                            Ok(Flag { value, ..f.clone() })
                        })
                        .collect::<Result<Vec<_>>>()?,
                ),
            };
            points.push(Point { index, dir: self.dir().join(&name), name, labels, train_flags, eval_flags });
        }
        Ok(points)
    }

    /// `template` with each `{AXIS}` replaced by the point's label of that axis.
    fn fill(&self, template: &str, key: &str, labels: &[(String, String)]) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close =
                rest[open..].find('}').ok_or_else(|| bad(&self.source, key, format!("unclosed {{ in {template:?}")))?;
            let axis = &rest[open + 1..open + close];
            let label = labels.iter().find(|(a, _)| a == axis).map(|(_, l)| l).ok_or_else(|| {
                let names: Vec<&str> = self.axes.iter().map(|a| a.name.as_str()).collect();
                bad(
                    &self.source,
                    key,
                    format!("{{{axis}}} is not an axis of the grid (its axes: {})", names.join(", ")),
                )
            })?;
            out.push_str(label);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Everything that can be checked before a point runs: the grid is not empty, no flag is
    /// set twice, point names are distinct, and every point's `train` and `eval` commands
    /// parse and its configuration passes `train`'s checks.
    pub fn check(&self) -> Result<()> {
        if self.axes.is_empty() {
            return Err(Error::Config(format!(
                "{}: the grid is empty: give [grid] an axis (or seeds = [...]) so that there is something to sweep",
                self.source
            )));
        }
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name == "." || self.name == ".." {
            return Err(bad(&self.source, "name", format!("{:?} is not a folder name", self.name)));
        }
        for (i, axis) in self.axes.iter().enumerate() {
            if let Some(other) = self.axes[..i].iter().find(|a| a.name == axis.name) {
                return Err(bad(
                    &self.source,
                    &format!("grid.{}", axis.name),
                    format!("duplicate axis ({} again)", other.name),
                ));
            }
            for (j, value) in axis.values.iter().enumerate() {
                if axis.values[..j].iter().any(|v| v.label == value.label) {
                    return Err(bad(
                        &self.source,
                        &format!("grid.{}", axis.name),
                        format!("the value {} twice", value.label),
                    ));
                }
            }
        }
        // A flag set in two places would leave one silently ignored.
        let mut setters: Vec<(&str, &str)> = self.train.iter().map(|f| (f.name.as_str(), f.key.as_str())).collect();
        for axis in &self.axes {
            let mut names: Vec<(&str, &str)> = vec![];
            for value in &axis.values {
                for f in &value.flags {
                    if !names.iter().any(|(n, _)| *n == f.name) {
                        names.push((&f.name, &f.key));
                    }
                }
            }
            for (name, key) in names {
                if let Some((_, first)) = setters.iter().find(|(n, _)| *n == name) {
                    return Err(bad(&self.source, key, format!("duplicate axis: --{name} is already set by {first}")));
                }
                setters.push((name, key));
            }
        }
        for (i, f) in self.train.iter().enumerate() {
            if let Some(first) = self.train[..i].iter().find(|g| g.name == f.name) {
                return Err(bad(&self.source, &f.key, format!("--{} is already set by {}", f.name, first.key)));
            }
        }
        let points = self.points()?;
        for (i, p) in points.iter().enumerate() {
            if let Some(other) = points[..i].iter().find(|q| q.name == p.name) {
                return Err(bad(
                    &self.source,
                    "point-name",
                    format!(
                        "points {} and {} are both named {:?}: each needs its own folder",
                        other.index, p.index, p.name
                    ),
                ));
            }
            self.check_point(p)?;
        }
        Ok(())
    }

    /// The error for point `p`, naming the file, the keys among `flags` that `message`
    /// mentions, and the point.
    fn point_error(&self, p: &Point, flags: &[Flag], message: &str) -> Error {
        let keys: Vec<&str> = flags.iter().filter(|f| mentions(message, &f.name)).map(|f| f.key.as_str()).collect();
        let keys = if keys.is_empty() { String::new() } else { format!("{}: ", keys.join(", ")) };
        Error::Config(format!("{}: {keys}point {}: {}", self.source, p.describe(), message.trim()))
    }

    /// The point's run configuration as `train` would make it, checked as `train` checks it.
    pub fn point_config(&self, p: &Point) -> Result<RunConfig> {
        let argv = std::iter::once("train".to_string()).chain(p.train_args());
        let cli = TrainCli::try_parse_from(argv).map_err(|e| self.point_error(p, &p.train_flags, &clap_message(&e)))?;
        let mut config = cli.config;
        config.check().map_err(|e| self.point_error(p, &p.train_flags, &e.to_string()))?;
        Ok(config)
    }

    /// One point's checks: its commands parse, its configuration passes `train`'s checks, and
    /// its folder, if it holds a run, holds this configuration.
    pub fn check_point(&self, p: &Point) -> Result<()> {
        let config = self.point_config(p)?;
        if let Some(args) = p.eval_args() {
            let argv = std::iter::once("eval".to_string()).chain(args);
            let flags = p.eval_flags.as_deref().unwrap_or_default();
            EvalCli::try_parse_from(argv).map_err(|e| self.point_error(p, flags, &clap_message(&e)))?;
        }
        if p.dir.join(crate::runs::CONFIG_FILE).is_file() {
            let held = RunConfig::read(&p.dir)?;
            let differences = config_differences(&held, &config);
            if !differences.is_empty() {
                return Err(Error::Config(format!(
                    "{}: point {}: {} holds another run ({}): choose another name or root for the study, or \
                     remove the folder",
                    self.source,
                    p.describe(),
                    p.dir.join(crate::runs::CONFIG_FILE).display(),
                    differences.join("; ")
                )));
            }
        }
        Ok(())
    }

    /// The study as a study file: what a sweep keeps in its folder ([`SNAPSHOT_FILE`]), with
    /// its root made absolute, so that every job reads the same points whatever its directory.
    pub fn to_toml(&self) -> String {
        let mut doc = toml::Table::new();
        let text = |s: &str| toml::Value::String(s.to_string());
        doc.insert("name".into(), text(&self.name));
        doc.insert("root".into(), text(&self.root.display().to_string()));
        if !self.description.is_empty() {
            doc.insert("description".into(), text(&self.description));
        }
        if let Some(template) = &self.point_name {
            doc.insert("point-name".into(), text(template));
        }
        let flags_table = |flags: &[Flag]| {
            let mut table = toml::Table::new();
            for f in flags {
                table.insert(f.name.clone(), f.value.as_deref().map_or(toml::Value::Boolean(true), text));
            }
            toml::Value::Table(table)
        };
        doc.insert("train".into(), flags_table(&self.train));
        // Every axis as a table of named settings, even one flag's list: a TOML writer puts a
        // table's plain keys before its sub-tables, which would reorder a list written after a
        // table (`seeds`, last) and with it every point's index.
        let mut grid = toml::Table::new();
        for axis in &self.axes {
            let settings = axis.values.iter().map(|v| (v.label.clone(), flags_table(&v.flags))).collect();
            grid.insert(axis.name.clone(), toml::Value::Table(settings));
        }
        doc.insert("grid".into(), toml::Value::Table(grid));
        if let Some(eval) = &self.eval {
            doc.insert("eval".into(), flags_table(eval));
        }
        let columns = self.columns.iter().map(|c| text(c)).collect();
        doc.insert(
            "summary".into(),
            toml::Value::Table([("columns".to_string(), toml::Value::Array(columns))].into_iter().collect()),
        );
        if !self.slurm.is_empty() {
            let table = self
                .slurm
                .iter()
                .map(|(k, v)| (k.clone(), v.as_deref().map_or(toml::Value::Boolean(true), text)))
                .collect();
            doc.insert("slurm".into(), toml::Value::Table(table));
        }
        format!(
            "# The study this sweep runs, as `sweep` resolved it: its points' jobs read this copy.\n{}",
            toml::to_string(&doc).unwrap_or_default()
        )
    }
}

/// `beta=4_z-dim=32`: a point's folder name when the study gives no template.
pub fn default_point_name(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return "default".into();
    }
    labels.iter().map(|(a, l)| format!("{a}={l}")).collect::<Vec<_>>().join("_").replace(['/', ' '], "-")
}

/// Whether an error message is about `--name` (the flag, not a longer one it begins).
fn mentions(message: &str, name: &str) -> bool {
    let needle = format!("--{name}");
    message.match_indices(&needle).any(|(i, _)| {
        let next = message[i + needle.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// clap's message without its usage lines and help hint: the first line says what is wrong.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    first.trim_start_matches("error: ").to_string()
}

/// `beta is 4 there, 1 here` for each key whose value differs between two configurations.
fn config_differences(held: &RunConfig, wanted: &RunConfig) -> Vec<String> {
    let to_map = |c: &RunConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (held, wanted) = (to_map(held), to_map(wanted));
    wanted
        .iter()
        .filter(|(key, value)| held.get(*key) != Some(value))
        .map(|(key, value)| {
            let there = held.get(key).map_or("unset".to_string(), |v| v.to_string());
            format!("{key} is {there} there, {value} here")
        })
        .collect()
}

/// `train` arguments as typed after `sweep ... --` (`--arch dense --stratified --z-dim=4`),
/// as flags.
pub fn flags_from_args(source: &str, args: &[String]) -> Result<Vec<Flag>> {
    let mut flags = vec![];
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(long) = arg.strip_prefix("--") else {
            return Err(Error::Config(format!("{source}: train argument {arg:?}: expected --FLAG")));
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (long, None),
        };
        let key = format!("-- {arg}");
        let value = match (Binary::Train.takes_value(name), inline) {
            (Some(true), Some(v)) => toml::Value::String(v),
            (Some(true), None) => {
                i += 1;
                let v = args.get(i).ok_or_else(|| Error::Config(format!("{source}: --{name} needs a value")))?;
                toml::Value::String(v.clone())
            }
            // A switch; or a flag train lacks or the sweep sets, which `flag` refuses by name.
            _ => toml::Value::Boolean(true),
        };
        if let Some(f) = flag(source, Binary::Train, &key, name, &value)? {
            flags.push(f);
        }
        i += 1;
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root that holds no sweep: nothing is compared with a folder of this machine's, and
    /// nothing is written (checking a study writes nothing).
    const NO_ROOT: &str = "/nonexistent/sweeps";

    fn study(text: &str) -> Result<Study> {
        let mut s = Study::parse("s.toml", "s", text)?;
        s.root = PathBuf::from(NO_ROOT);
        s.check()?;
        Ok(s)
    }

    fn err(text: &str) -> String {
        study(text).unwrap_err().to_string()
    }

    const TINY: &str = "[train]\narch = \"dense\"\nepochs = 1\n[grid]\nbeta = [0, 1]\nz-dim = [3, 4, 5]\n";

    #[test]
    fn a_grid_is_the_product_of_its_axes_last_fastest() {
        let points = study(TINY).unwrap().points().unwrap();
        assert_eq!(points.len(), 6);
        assert_eq!(points[0].name, "beta=0_z-dim=3");
        assert_eq!(points[1].name, "beta=0_z-dim=4");
        assert_eq!(points[5].name, "beta=1_z-dim=5");
        assert_eq!(points[5].index, 5);
        assert_eq!(
            points[1].train_args()[..8],
            ["--arch", "dense", "--epochs", "1", "--beta", "0", "--z-dim", "4"].map(String::from)
        );
    }

    #[test]
    fn seeds_are_the_last_axis_and_named_settings_set_several_flags() {
        let s = study(
            "seeds = [0, 1]\npoint-name = \"{objective}-s{seed}\"\n[train]\narch = \"dense\"\nloss = \"beta-tcvae\"\n\
             [grid.objective]\nvae = { alpha = 6, beta = 6, gamma = 6 }\ntcvae = { beta = 6, stratified = true }\n",
        )
        .unwrap();
        let points = s.points().unwrap();
        let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["vae-s0", "vae-s1", "tcvae-s0", "tcvae-s1"]);
        let args = points[3].train_args().join(" ");
        assert!(args.contains("--beta 6 --stratified --seed 1"), "{args}");
    }

    #[test]
    fn eval_flags_take_the_points_values() {
        let s = study(&format!("seeds = [3]\n{TINY}[eval]\nwhat = \"metrics\"\nseed = \"{{seed}}\"\n")).unwrap();
        let p = &s.points().unwrap()[0];
        assert_eq!(p.eval_args().unwrap()[2..], ["--what", "metrics", "--seed", "3"].map(String::from));
    }

    #[test]
    fn an_unknown_train_flag_names_the_file_and_key() {
        let e = err("[train]\nbogus = 1\n[grid]\nbeta = [0]\n");
        assert!(e.contains("s.toml: train.bogus: train has no flag --bogus"), "{e}");
    }

    #[test]
    fn a_malformed_value_names_the_key_and_the_point() {
        let e = err("[train]\narch = \"dense\"\n[grid]\nbeta = [1, \"x\"]\n");
        assert!(e.contains("s.toml: grid.beta[1]: point 1 (beta=x)") && e.contains("'x'"), "{e}");
        let e = err("[train]\narch = \"dense\"\n[grid]\nbeta = [-5]\n");
        assert!(e.contains("grid.beta[0]: point 0 (beta=-5)"), "{e}");
    }

    #[test]
    fn a_flag_set_twice_is_a_duplicate_axis() {
        let e = err("[train]\nbeta = 1\n[grid]\nbeta = [0, 1]\n");
        assert!(e.contains("grid.beta[0]: duplicate axis: --beta is already set by train.beta"), "{e}");
        let e = err("seeds = [0]\n[grid]\nseed = [1]\n");
        assert!(e.contains("seeds: duplicate axis"), "{e}");
        let e = err("[grid]\nbeta = [0]\n[grid.objective]\nx = { beta = 2 }\n");
        assert!(e.contains("grid.objective.x.beta: duplicate axis: --beta is already set by grid.beta[0]"), "{e}");
        let e = err("[grid]\nbeta = [1, 1]\n");
        assert!(e.contains("grid.beta: the value 1 twice"), "{e}");
    }

    #[test]
    fn an_empty_grid_or_axis_is_refused() {
        assert!(err("[train]\narch = \"dense\"\n").contains("the grid is empty"));
        assert!(err("[grid]\nbeta = []\n").contains("grid.beta: an axis needs at least one value"));
    }

    #[test]
    fn flags_the_sweep_sets_are_refused() {
        assert!(err("[train]\nrun-dir = \"x\"\n[grid]\nbeta = [0]\n")
            .contains("train.run-dir: --run-dir is set by the sweep"));
        assert!(err("[eval]\nrun = \"x\"\n[grid]\nbeta = [0]\n").contains("eval.run: --run is set by the sweep"));
    }

    #[test]
    fn a_placeholder_that_is_not_an_axis_is_refused() {
        let e = err("point-name = \"b{bta}\"\n[grid]\nbeta = [0]\n");
        assert!(e.contains("point-name: {bta} is not an axis of the grid (its axes: beta)"), "{e}");
    }

    #[test]
    fn a_mangled_study_file_is_refused_or_read_never_a_panic() {
        // The committed tiny study, mutated a thousand ways (bytes replaced, dropped, or TOML's
        // own punctuation put in): every text is read or refused with a message naming the file.
        let valid = include_str!("../../../studies/tiny-dense.toml").as_bytes();
        let mut rng = tensor::Rng::new(72);
        let mut below = |n: usize| (rng.next_u64() % n as u64) as usize;
        let punctuation = b"[]{}=\",.#-\n0\\";
        for _ in 0..1000 {
            let mut bytes = valid.to_vec();
            for _ in 0..1 + below(4) {
                let at = below(bytes.len());
                match below(3) {
                    0 => bytes[at] = punctuation[below(punctuation.len())],
                    1 => drop(bytes.remove(at)),
                    _ => bytes.insert(at, punctuation[below(punctuation.len())]),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = Study::parse("m.toml", "m", &text).and_then(|mut s| {
                s.root = PathBuf::from(NO_ROOT);
                s.check()
            }) {
                assert!(e.to_string().contains("m.toml"), "an error that names no file: {e}\n{text}");
            }
        }
    }

    #[test]
    fn points_sharing_a_folder_are_refused() {
        let e = err("point-name = \"same\"\n[grid]\nbeta = [0, 1]\n");
        assert!(e.contains("points 0 and 1 are both named \"same\""), "{e}");
    }

    #[test]
    fn a_grid_of_more_points_than_a_study_may_hold_is_refused_before_they_are_made() {
        // Ten axes of ten values: 10^10 points, which would not fit in memory as a list.
        let flags = ["beta", "alpha", "gamma", "k1", "lr", "z-dim", "epochs", "batch-size", "patience", "input-noise"];
        let axes: String = flags.iter().map(|f| format!("{f} = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n")).collect();
        let e = err(&format!("[grid]\n{axes}"));
        assert!(e.contains("grid: 10 axes make 10000000000 points") && e.contains(&MAX_POINTS.to_string()), "{e}");
    }

    #[test]
    fn an_unknown_top_level_key_is_refused() {
        assert!(err("gird = 1\n[grid]\nbeta = [0]\n").contains("s.toml: gird: unknown key"));
    }

    #[test]
    fn a_study_comes_back_from_its_snapshot_with_the_same_points() {
        let s = study(&format!(
            "seeds = [0, 1]\npoint-name = \"{{objective}}-b{{beta}}-s{{seed}}\"\n{}[grid.objective]\n\
             vae = {{ loss = \"beta-tcvae\", stratified = true }}\nplain = {{ loss = \"beta-vae\" }}\n\
             [eval]\nseed = \"{{seed}}\"\n[slurm]\ntime = \"01:00:00\"\nexclusive = true\n",
            TINY.replace("z-dim = [3, 4, 5]\n", "")
        ))
        .unwrap();
        let back = Study::parse("snapshot", "x", &s.to_toml()).unwrap();
        let described = |s: &Study| {
            s.points()
                .unwrap()
                .iter()
                .map(|p| (p.index, p.name.clone(), p.train_args(), p.eval_args()))
                .collect::<Vec<_>>()
        };
        assert_eq!(described(&back), described(&s));
        assert_eq!(back.slurm, s.slurm);
        assert_eq!(back.root, s.root);
    }

    #[test]
    fn a_grid_sweep_is_a_study() {
        let root = PathBuf::from(NO_ROOT);
        let s =
            Study::from_grid("g", &root, &["beta=0,1".into()], &["--arch".into(), "dense".into(), "--epochs=2".into()])
                .unwrap();
        let p = s.points().unwrap();
        assert_eq!(p[1].name, "beta=1");
        assert_eq!(p[1].train_args()[..6], ["--arch", "dense", "--epochs", "2", "--beta", "1"].map(String::from));
        let e = Study::from_grid("g", &root, &["beta".into()], &[]).unwrap_err().to_string();
        assert!(e.contains("--grid 'beta'"), "{e}");
        let e = Study::from_grid("g", &root, &["beta=1".into()], &["--resume".into(), "x".into()]).unwrap_err();
        assert!(e.to_string().contains("--resume is set by the sweep"), "{e}");
    }
}
