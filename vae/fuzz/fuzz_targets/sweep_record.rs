#![no_main]
//! `vae::fuzz`'s target `sweep_record` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("sweep_record") {
        (target.run)(data)
    }
});
