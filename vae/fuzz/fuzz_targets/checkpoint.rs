#![no_main]
//! `vae::fuzz`'s target `checkpoint` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("checkpoint") {
        (target.run)(data)
    }
});
