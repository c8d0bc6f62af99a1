//! Model files: atomic writes, output directories, JSON and the framed binary checkpoint format.
//!
//! A checkpoint is a 24-byte header followed by a payload:
//!
//! | bytes  | content                                                        |
//! |--------|----------------------------------------------------------------|
//! | 0..8   | magic `b"BIORULE\0"`                                           |
//! | 8..12  | format version, `u32` little-endian ([`CHECKPOINT_VERSION`])   |
//! | 12..20 | payload length in bytes, `u64` little-endian                   |
//! | 20..24 | CRC-32 (IEEE) of the payload, `u32` little-endian              |
//! | 24..   | payload: the value, bincode 2 `standard()` encoding via serde  |

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::DataError;

/// The 8 bytes every checkpoint starts with.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"BIORULE\0";
/// The checkpoint format version this build writes and reads. 3: the model and the rule's training
/// state are tagged envelopes (rule name + the rule's own configuration and state), so that any
/// registered rule can be saved; 2 added `layerwise` to the `bio` hyper-parameters. Files of other
/// versions are refused with [`DataError::CheckpointVersion`].
pub const CHECKPOINT_VERSION: u32 = 3;
/// Size of the checkpoint header in bytes (magic, version, payload length, checksum).
pub const CHECKPOINT_HEADER_LEN: usize = 24;

/// Upper bound on what the bincode decoder may claim for containers (4 GiB on 64-bit targets).
const DECODE_LIMIT: usize = (u32::MAX as usize).saturating_add(1);

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: the data go to a temporary file in the same directory, which
/// is flushed to disk and then renamed over `path`. Readers see either the old file or the complete
/// new one, never a half-written file under the final name.
///
/// Errors (naming the path) if the directory does not exist or is not writable.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), DataError> {
    let path = path.as_ref();
    let file_name = path
        .file_name()
        .ok_or_else(|| DataError::Invalid { what: format!("cannot write to {}: not a file path", path.display()) })?;
    let dir = parent_dir(path);
    if !dir.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "the directory does not exist");
        return Err(DataError::io("write into directory", dir, source));
    }
    let temp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_temp_then_rename(&temp, path, bytes);
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result?;
    sync_dir(&dir);
    Ok(())
}

fn write_temp_then_rename(temp: &Path, path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(|e| DataError::io("create a temporary file for", path, e))?;
    file.write_all(bytes).map_err(|e| DataError::io("write", path, e))?;
    file.sync_all().map_err(|e| DataError::io("flush to disk", path, e))?;
    drop(file);
    std::fs::rename(temp, path).map_err(|e| DataError::io("move the finished file into place at", path, e))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Best effort: makes the rename durable by syncing the directory (not possible on every platform).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Creates the directory `path` (and its parents) if needed, then checks it is writable by creating
/// and removing a probe file in it. Call before long training runs so a bad `--out` fails early.
pub fn ensure_output_dir(path: impl AsRef<Path>) -> Result<(), DataError> {
    let path = path.as_ref();
    std::fs::create_dir_all(path).map_err(|e| DataError::io("create directory", path, e))?;
    if !path.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists but is not a directory");
        return Err(DataError::io("use as output directory", path, source));
    }
    let probe = path.join(format!(
        ".biorule-write-probe-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"probe"))
        .map_err(|e| DataError::io("write into directory", path, e))?;
    std::fs::remove_file(&probe).map_err(|e| DataError::io("remove probe file", &probe, e))
}

/// Writes `value` as pretty-printed JSON (with a final newline) to `path`, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: impl AsRef<Path>, value: &T) -> Result<(), DataError> {
    let path = path.as_ref();
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| DataError::Json { path: path.into(), what: e.to_string() })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file into a `T`.
pub fn read_json<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| DataError::Json { path: path.into(), what: e.to_string() })
}

/// Encodes `value` as a framed checkpoint (header and bincode payload, see the module docs).
///
/// # Panics
///
/// If `T`'s `Serialize` implementation fails (e.g. a sequence of unknown length); the derived
/// implementations of plain data never do. Use [`try_encode_checkpoint`] to get an error instead.
pub fn encode_checkpoint<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    try_encode_checkpoint(value).unwrap_or_else(|e| panic!("{e}"))
}

/// Encodes `value` as a framed checkpoint, returning an error if `T` cannot be serialized.
pub fn try_encode_checkpoint<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, DataError> {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| DataError::Invalid { what: format!("value cannot be encoded as a checkpoint: {e}") })?;
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_LEN + payload.len());
    out.extend_from_slice(&CHECKPOINT_MAGIC);
    out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a framed checkpoint; `name` (usually the file path) is used in error messages.
///
/// Each failure has its own error: [`DataError::NotACheckpoint`] (wrong magic),
/// [`DataError::CheckpointVersion`], [`DataError::CheckpointTruncated`],
/// [`DataError::CheckpointCorrupt`] (checksum mismatch or trailing bytes) and
/// [`DataError::CheckpointDecode`] (payload is not a `T`). Never panics.
pub fn decode_checkpoint<T: DeserializeOwned>(bytes: &[u8], name: &str) -> Result<T, DataError> {
    decode_checkpoint_at(bytes, Path::new(name))
}

fn decode_checkpoint_at<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T, DataError> {
    let truncated = |what: String| DataError::CheckpointTruncated { path: path.into(), what };
    let magic_len = bytes.len().min(CHECKPOINT_MAGIC.len());
    if bytes[..magic_len] != CHECKPOINT_MAGIC[..magic_len] {
        return Err(DataError::NotACheckpoint { path: path.into() });
    }
    let Some((header, rest)) = bytes.split_first_chunk::<CHECKPOINT_HEADER_LEN>() else {
        return Err(truncated(format!("{} bytes, shorter than the {CHECKPOINT_HEADER_LEN}-byte header", bytes.len())));
    };
    let h = header;
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    let declared = u64::from_le_bytes([h[12], h[13], h[14], h[15], h[16], h[17], h[18], h[19]]);
    let stored_crc = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
    if version != CHECKPOINT_VERSION {
        return Err(DataError::CheckpointVersion { path: path.into(), found: version, supported: CHECKPOINT_VERSION });
    }
    let available = rest.len() as u64;
    if declared > available {
        return Err(truncated(format!("header declares {declared} payload bytes, only {available} present")));
    }
    if declared < available {
        return Err(DataError::CheckpointCorrupt {
            path: path.into(),
            what: format!("{} unexpected bytes after the {declared}-byte payload", available - declared),
        });
    }
    let computed = crc32fast::hash(rest);
    if computed != stored_crc {
        return Err(DataError::CheckpointCorrupt {
            path: path.into(),
            what: format!("checksum mismatch (stored 0x{stored_crc:08x}, computed 0x{computed:08x})"),
        });
    }
    let (value, used) = decode_payload::<T>(rest)
        .map_err(|e| DataError::CheckpointDecode { path: path.into(), what: e.to_string() })?;
    if used != rest.len() {
        return Err(DataError::CheckpointDecode {
            path: path.into(),
            what: format!(
                "{} of {} payload bytes left over (the file holds a different type)",
                rest.len() - used,
                rest.len()
            ),
        });
    }
    Ok(value)
}

/// Decodes a bincode payload with an allocation limit scaled to its size: a container length field
/// cannot make the decoder reserve far more memory than a payload of that size can fill (found by
/// fuzzing: a 40-byte payload declaring a 4 GB string made it allocate 4 GB).
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<(T, usize), bincode::error::DecodeError> {
    macro_rules! with_limit {
        ($limit:expr) => {
            bincode::serde::decode_from_slice::<T, _>(payload, bincode::config::standard().with_limit::<{ $limit }>())
        };
    }
    // Legitimate payloads claim about their own size (f32 tensors: 4 bytes each, encoded and in memory),
    // plus small per-element overheads: 16× the payload (at least 16 MiB) leaves ample room.
    match payload.len() {
        n if n <= 1 << 20 => with_limit!(1 << 24),
        n if n <= 1 << 24 => with_limit!(1 << 28),
        n if n <= 1 << 28 => with_limit!(DECODE_LIMIT),
        _ => with_limit!(DECODE_LIMIT),
    }
}

/// Encodes `value` as a checkpoint and writes it to `path` atomically.
pub fn save_checkpoint<T: Serialize + ?Sized>(path: impl AsRef<Path>, value: &T) -> Result<(), DataError> {
    write_atomic(path, &try_encode_checkpoint(value)?)
}

/// Reads and decodes the checkpoint at `path` (see [`decode_checkpoint`] for the errors).
pub fn load_checkpoint<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io("read", path, e))?;
    decode_checkpoint_at(&bytes, path)
}
