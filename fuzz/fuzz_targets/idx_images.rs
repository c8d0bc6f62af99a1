#![no_main]
//! Fuzzes the IDX image parser: any bytes give a value or an error, never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bio_data::parse_idx_images(data, "fuzz");
});
