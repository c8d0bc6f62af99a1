#![no_main]
//! Fuzzes the checkpoint decoder on model files and on training states (the frame check is
//! bypassed by re-framing the input, so the payload decoder itself is fuzzed too).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bio_data::decode_checkpoint::<bio_data::ModelFile>(data, "fuzz");
    let framed = reframe(data);
    let _ = bio_data::decode_checkpoint::<bio_data::ModelFile>(&framed, "fuzz");
    let _ = bio_data::decode_checkpoint::<bio_data::TrainingState>(&framed, "fuzz");
});

/// A valid frame (magic, version, length, CRC) around `payload`.
fn reframe(payload: &[u8]) -> Vec<u8> {
    let mut out = bio_data::store::CHECKPOINT_MAGIC.to_vec();
    out.extend_from_slice(&bio_data::store::CHECKPOINT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}
