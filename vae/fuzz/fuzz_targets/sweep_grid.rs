#![no_main]
//! `vae::fuzz`'s target `sweep_grid` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("sweep_grid") {
        (target.run)(data)
    }
});
