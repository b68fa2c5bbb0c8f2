#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| leads_fuzz::douyin(data));
