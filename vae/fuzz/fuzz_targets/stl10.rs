#![no_main]
//! `vae::fuzz`'s target `stl10` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("stl10") {
        (target.run)(data)
    }
});
