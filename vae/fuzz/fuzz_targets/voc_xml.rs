#![no_main]
//! `vae::fuzz`'s target `voc_xml` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = vae::fuzz::target("voc_xml") {
        (target.run)(data)
    }
});
