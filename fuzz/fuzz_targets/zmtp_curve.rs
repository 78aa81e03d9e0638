#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpoller::fuzzing::zmtp_curve(data));
