//! The `report` binary and `sweep`'s page: one self-contained HTML file per run folder (every
//! picture inlined, nothing fetched), with the run's configuration, metrics, loss curves,
//! per-epoch grids and `eval`'s results when present.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use tempfile::TempDir;

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "a good run prints nothing on stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A dense run on 300 dSprites images at 16×16 (z = 4) for `epochs` epochs, and the guard that
/// removes it.
fn tiny_run(name: &str, epochs: usize) -> (TempDir, PathBuf) {
    let (scratch, dir) = common::run_dir(name);
    ok(common::command(env!("CARGO_BIN_EXE_train"))
        .args(["--arch", "dense", "--max-images", "300", "--image-size", "16", "--batch-size", "32"])
        // The CPU named, not left to the default, which picks a hardware GPU where there is one.
        .args(["--z-dim", "4", "--device", "cpu", "--threads", "2", "--epochs", &epochs.to_string(), "--run-dir"])
        .arg(&dir)
        .output()
        .unwrap());
    (scratch, dir)
}

fn report(run: &Path) -> String {
    ok(common::command(env!("CARGO_BIN_EXE_report")).arg("--run").arg(run).output().unwrap());
    std::fs::read_to_string(run.join("report.html")).unwrap()
}

/// Every `src=` and `href=` value of the page.
fn references(html: &str) -> Vec<&str> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| html.split(attr).skip(1).map(|s| s.split('"').next().unwrap()))
        .collect()
}

#[test]
fn a_run_report_inlines_every_picture_and_shows_every_epoch_and_the_config() {
    let (_scratch, run) = tiny_run("two-epochs", 2);
    let html = report(&run);
    let refs = references(&html);
    // loss plot + recon and samples grids of 2 epochs
    assert_eq!(refs.len(), 5, "{refs:?}");
    for r in &refs {
        let b64 = r.strip_prefix("data:image/png;base64,").unwrap_or_else(|| panic!("not inlined: {r}"));
        let png = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        image::load_from_memory(&png).unwrap();
    }
    assert_eq!(html.matches("<details").count(), 2, "one section per epoch");
    assert!(html.contains("<summary>epoch 1</summary>") && html.contains("<summary>epoch 2</summary>"));
    // the metrics table: a header and two epochs; the config table holds the run's flags
    let metrics = html.split("<table class=\"metrics\">").nth(1).unwrap().split("</table>").next().unwrap();
    assert_eq!(metrics.matches("<tr>").count(), 3, "{metrics}");
    assert!(html.contains("<tr><th>arch</th><td>dense</td></tr>"), "config table");
    assert!(html.contains("<tr><th>z_dim</th><td>4</td></tr>"), "config table");
    assert!(!run.join("report.html.tmp").exists());
}

#[test]
fn evals_pictures_and_metrics_join_the_report_once_eval_has_run() {
    let (_scratch, run) = tiny_run("with-eval", 1);
    let before = report(&run);
    assert!(before.contains("Not evaluated yet: <code>eval --run "), "a pointer to eval before it ran");
    assert!(!before.contains("recon.png: test images"), "no eval pictures before eval ran");
    ok(common::command(env!("CARGO_BIN_EXE_eval"))
        .arg("--run")
        .arg(&run)
        .args(["--what", "recon,samples,metrics", "--threads", "2", "--samples", "16"])
        .output()
        .unwrap());
    let html = report(&run);
    assert!(html.contains("Evaluation"));
    assert!(html.contains("recon.png: test images (top) and their reconstructions"), "eval's recon.png");
    assert!(html.contains("samples.png: samples from N(0, I)"), "eval's samples.png");
    assert!(html.contains("<tr><th>test_loss</th>"), "eval's metrics.json");
    assert_eq!(references(&html).len(), 5, "loss plot, one epoch's two grids, eval's two pictures");
}

#[test]
fn the_report_names_the_model_size_the_wall_time_the_machine_and_the_code_of_each_invocation() {
    let (_scratch, run) = tiny_run("provenance", 1);
    ok(common::command(env!("CARGO_BIN_EXE_train"))
        .arg("--resume")
        .arg(run.join("last.safetensors"))
        .args(["--epochs", "2", "--device", "cpu", "--threads", "2"])
        .output()
        .unwrap());
    let html = report(&run);
    assert!(html.contains(" parameters (") && html.contains(", trained for "), "model size and wall time");
    let table = html.split("<table class=\"provenance\">").nth(1).unwrap().split("</table>").next().unwrap();
    assert_eq!(table.matches("<tr>").count(), 3, "a header and the two invocations:\n{table}");
    assert!(table.contains("<td>1</td>") && table.contains("<td>2</td>"), "the first epoch of each:\n{table}");
    assert!(table.contains("cpu (rayon, 2 threads)"), "the device:\n{table}");
    assert!(table.contains(vae::provenance::build_commit()), "the commit:\n{table}");
    assert!(table.contains(&vae::provenance::cpu_model()), "the CPU:\n{table}");
}

#[test]
fn a_folder_without_metrics_csv_is_refused_naming_the_file() {
    let (_scratch, run) = tiny_run("no-metrics", 1);
    std::fs::remove_file(run.join("metrics.csv")).unwrap();
    std::fs::remove_file(run.join("report.html")).unwrap();
    let out = common::command(env!("CARGO_BIN_EXE_report")).arg("--run").arg(&run).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics.csv") && err.contains("no such file"), "{err}");
    assert!(!run.join("report.html").exists());
}

#[test]
fn a_folder_without_config_json_is_a_clear_error() {
    let scratch = common::scratch("empty");
    let empty = scratch.path();
    let out = common::command(env!("CARGO_BIN_EXE_report")).arg("--run").arg(empty).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("--run ") && err.contains("no config.json"), "{err}");
    assert!(!empty.join("report.html").exists());
}

#[test]
fn a_sweep_writes_a_page_linking_each_runs_report() {
    let (_scratch, root) = common::run_dir("sweep");
    ok(common::command(env!("CARGO_BIN_EXE_sweep"))
        .args(["--name", "tiny", "--grid", "beta=0,1", "--root"])
        .arg(&root)
        .args(["--", "--arch", "dense", "--max-images", "200", "--image-size", "16", "--z-dim", "3"])
        .args(["--epochs", "1", "--threads", "2"])
        .output()
        .unwrap());
    let dir = root.join("tiny");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let links: Vec<&str> = references(&html).into_iter().filter(|r| !r.starts_with("data:")).collect();
    assert_eq!(links, ["beta=0/report.html", "beta=1/report.html"]);
    for link in links {
        assert!(dir.join(link).is_file(), "{link} does not exist");
    }
}
