#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| leads_fuzz::hmac_sources(data));
