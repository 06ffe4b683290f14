#![no_main]
//! `vae::fuzz`'s target `explore_request` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("explore_request") {
        (target.run)(data)
    }
});
