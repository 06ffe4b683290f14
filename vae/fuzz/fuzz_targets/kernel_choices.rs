#![no_main]
//! `vae::fuzz`'s target `kernel_choices` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("kernel_choices") {
        (target.run)(data)
    }
});
