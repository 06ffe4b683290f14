#![no_main]
//! `vae::fuzz`'s target `image_folder` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("image_folder") {
        (target.run)(data)
    }
});
