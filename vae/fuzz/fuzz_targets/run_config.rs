#![no_main]
//! `vae::fuzz`'s target `run_config` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("run_config") {
        (target.run)(data)
    }
});
