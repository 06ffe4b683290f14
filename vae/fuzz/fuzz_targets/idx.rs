#![no_main]
//! `vae::fuzz`'s target `idx` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("idx") {
        (target.run)(data)
    }
});
