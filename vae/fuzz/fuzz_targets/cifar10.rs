#![no_main]
//! `vae::fuzz`'s target `cifar10` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("cifar10") {
        (target.run)(data)
    }
});
