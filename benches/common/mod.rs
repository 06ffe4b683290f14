//! Helpers shared by the benches that print tables (`conv_layers`, `linear_layers`).

use std::time::Instant;

/// The median wall time of `reps` calls of `f`, in ms, after one warm-up call (first touch of
/// buffers, caches).
pub fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// [`median_ms`] with the pool's workers kept awake between the calls, as between a training
/// step's ops (`tensor::cpu::awake`) and as PyTorch's OpenMP threads are between parallel
/// regions: a layer's time as a step sees it, without waking a sleeping worker on every call.
pub fn step_median_ms(reps: usize, f: impl FnMut() + Send) -> f64 {
    tensor::cpu::awake::kept_awake(|| median_ms(reps, f))
}

/// The value that follows `name` (`--reps 40`) on the command line, if any.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The table's first lines: the thread count, then the header of the per-layer columns.
pub fn print_layer_table_header(reps: usize) {
    println!("threads: {}, {reps} repetitions, median\n", rayon::current_num_threads());
    println!("| workload | layer | GFLOP | fwd ms | fwd GFLOP/s | bwd-data ms | GFLOP/s | bwd-weight ms | GFLOP/s |");
    println!("|---|---|---|---|---|---|---|---|---|");
}

/// Whether `--layers` (`B1,7`: every layer of B1, and row 7) picks row `index` of `workload`;
/// every row when the flag is absent.
pub fn layer_chosen(layers: Option<&str>, index: usize, workload: &str) -> bool {
    layers.is_none_or(|o| o.split(',').any(|w| w == workload || w.parse() == Ok(index)))
}

/// One row of the table: GFLOP per kernel, then each kernel's median ms and GFLOP/s (`decimals`
/// for the GFLOP and ms columns).
pub fn print_layer_row(workload: &str, layer: &str, flops: f64, times_ms: [f64; 3], decimals: usize) {
    let cells: Vec<String> =
        times_ms.iter().map(|&ms| format!("{ms:.decimals$} | {:.1}", flops / (ms * 1e6))).collect();
    println!("| {workload} | {layer} | {:.decimals$} | {} |", flops / 1e9, cells.join(" | "));
}
