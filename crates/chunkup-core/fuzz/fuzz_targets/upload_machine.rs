#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chunkup_core::fuzzing::check("upload_machine", data));
