#![no_main]
//! `vae::fuzz`'s target `metrics_csv` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("metrics_csv") {
        (target.run)(data)
    }
});
