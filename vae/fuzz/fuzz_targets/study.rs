#![no_main]
//! `vae::fuzz`'s target `study` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("study") {
        (target.run)(data)
    }
});
