//! Model files: atomic writes, output directories, JSON and checkpoints.

use std::collections::BTreeMap;

use bio_core::Matrix;
use bio_data::{
    DataError, decode_checkpoint, encode_checkpoint, ensure_output_dir, load_checkpoint, read_json, save_checkpoint,
    store::CHECKPOINT_VERSION, write_atomic, write_json,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Model {
    name: String,
    weights: Vec<Matrix>,
    meta: BTreeMap<String, f64>,
}

fn model() -> Model {
    Model {
        name: "mlp".into(),
        weights: vec![Matrix::from_fn(3, 4, |i, j| (i * 4 + j) as f32 * 0.5), Matrix::zeros(1, 2)],
        meta: BTreeMap::from([("lr".into(), 1e-3), ("epochs".into(), 5.0)]),
    }
}

#[cfg(unix)]
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

#[test]
fn checkpoint_round_trip_in_memory_and_on_disk() {
    let bytes = encode_checkpoint(&model());
    assert_eq!(&bytes[..8], b"BIORULE\0");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), CHECKPOINT_VERSION);
    assert_eq!(u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize, bytes.len() - 24);
    assert_eq!(decode_checkpoint::<Model>(&bytes, "m").unwrap(), model());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.ckpt");
    save_checkpoint(&path, &model()).unwrap();
    assert_eq!(load_checkpoint::<Model>(&path).unwrap(), model());
    // Overwriting replaces the file and leaves no temporary files behind.
    save_checkpoint(&path, &Model { name: "other".into(), ..model() }).unwrap();
    assert_eq!(load_checkpoint::<Model>(&path).unwrap().name, "other");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn checkpoint_errors_are_distinct() {
    let good = encode_checkpoint(&model());
    let name = "runs/x.ckpt";

    let err = decode_checkpoint::<Model>(b"{\"json\": true}", name).unwrap_err();
    assert!(matches!(err, DataError::NotACheckpoint { .. }), "{err}");
    assert!(err.to_string().contains(name) && err.to_string().contains("not a biorule checkpoint"));

    // Format 2 (the closed bio/bp enums before the rule registry) is refused in one line.
    let mut old = good.clone();
    old[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = decode_checkpoint::<Model>(&old, name).unwrap_err();
    assert!(matches!(err, DataError::CheckpointVersion { found: 2, supported: 3, .. }), "{err}");
    assert!(err.to_string().contains("version 2") && err.to_string().contains("version 3"), "{err}");
    assert_eq!(err.to_string().lines().count(), 1, "{err}");

    for cut in [0, 5, 8, 23, 24, good.len() - 1] {
        let err = decode_checkpoint::<Model>(&good[..cut], name).unwrap_err();
        assert!(matches!(err, DataError::CheckpointTruncated { .. }), "cut {cut}: {err}");
    }

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let err = decode_checkpoint::<Model>(&flipped, name).unwrap_err();
    assert!(matches!(err, DataError::CheckpointCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");

    let mut extended = good.clone();
    extended.push(0);
    let err = decode_checkpoint::<Model>(&extended, name).unwrap_err();
    assert!(matches!(err, DataError::CheckpointCorrupt { .. }), "{err}");

    // A valid frame holding a different type.
    let err = decode_checkpoint::<Model>(&encode_checkpoint(&42u8), name).unwrap_err();
    assert!(matches!(err, DataError::CheckpointDecode { .. }), "{err}");
    let err = decode_checkpoint::<u8>(&good, name).unwrap_err();
    assert!(matches!(err, DataError::CheckpointDecode { .. }), "{err}");

    let err = load_checkpoint::<Model>("/nonexistent/model.ckpt").unwrap_err();
    assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("/nonexistent/model.ckpt"));
}

#[test]
fn garbage_payload_with_valid_frame_does_not_panic_or_allocate_wildly() {
    // A huge declared vector length inside a correctly checksummed frame.
    let payload = [0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
    let mut bytes = b"BIORULE\0".to_vec();
    bytes.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let err = decode_checkpoint::<Vec<Matrix>>(&bytes, "g").unwrap_err();
    assert!(matches!(err, DataError::CheckpointDecode { .. }), "{err}");
}

#[test]
fn json_round_trip_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    write_json(&path, &model()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\n  \"name\": \"mlp\"") && text.ends_with('\n'));
    assert_eq!(read_json::<Model>(&path).unwrap(), model());
    std::fs::write(&path, "{ not json").unwrap();
    let err = read_json::<Model>(&path).unwrap_err();
    assert!(matches!(err, DataError::Json { .. }) && err.to_string().contains("report.json"), "{err}");
}

#[test]
fn write_atomic_into_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("model.json");
    let err = write_atomic(&path, b"x").unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains(&dir.path().join("missing").display().to_string()), "{err}");
    assert!(!path.exists());
    // A parent that is a regular file is no directory either (this also holds when running as root).
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"").unwrap();
    let err = write_atomic(file.join("model.json"), b"x").unwrap_err();
    assert!(err.to_string().contains("plain-file"), "{err}");
    // A bare file name is relative to the current directory; a directory path is not a file.
    assert!(write_atomic("/", b"x").is_err());
}

#[cfg(unix)]
#[test]
fn write_atomic_and_ensure_output_dir_in_unwritable_directory() {
    use std::os::unix::fs::PermissionsExt;
    if running_as_root() {
        println!("skipped the permission part: running as root, which can write anywhere");
    }
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    if !running_as_root() {
        let err = write_atomic(locked.join("m.ckpt"), b"x").unwrap_err();
        assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("m.ckpt"), "{err}");
        let err = ensure_output_dir(&locked).unwrap_err();
        assert!(err.to_string().contains(&locked.display().to_string()), "{err}");
        let err = ensure_output_dir(locked.join("sub")).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn ensure_output_dir_creates_and_probes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a").join("b");
    ensure_output_dir(&out).unwrap();
    assert!(out.is_dir());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "probe file must be removed");
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(ensure_output_dir(&file).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn corrupted_checkpoints_never_panic(cut in any::<prop::sample::Index>(),
                                         flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4)) {
        let original = encode_checkpoint(&model());
        let mut bytes = original.clone();
        for (at, mask) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        let flipped = bytes != original;
        let cut = cut.index(bytes.len() + 1);
        let truncated = cut < bytes.len();
        match decode_checkpoint::<Model>(&bytes[..cut], "p") {
            Ok(m) => prop_assert!(!flipped && !truncated && m == model()),
            Err(_) => prop_assert!(flipped || truncated),
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut framed = b"BIORULE\0\x01\0\0\0".to_vec();
        framed.extend_from_slice(&bytes);
        prop_assert!(decode_checkpoint::<Model>(&bytes, "r").is_err() || bytes.starts_with(b"BIORULE\0"));
        let _ = decode_checkpoint::<Model>(&framed, "r");
    }
}
