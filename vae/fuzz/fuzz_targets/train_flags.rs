#![no_main]
//! `vae::fuzz`'s target `train_flags` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("train_flags") {
        (target.run)(data)
    }
});
