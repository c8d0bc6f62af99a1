//! Reading and writing IDX files (the MNIST file format), raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number (`0x00 0x00 type ndims`), `ndims` big-endian `u32`
//! dimensions, then the elements. Only unsigned-byte files (`type = 0x08`) are supported: images
//! have magic `0x00000803` (count × rows × cols) and labels `0x00000801` (count).
//!
//! Compression is detected from the gzip magic bytes (`1f 8b`), never from the file name. Parsing
//! never panics: every malformed input is reported as a [`DataError::Malformed`] naming the file.

use std::io::{Read, Write};
use std::path::Path;

use bio_core::Matrix;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::error::DataError;
use crate::store::write_atomic;

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UBYTE: u8 = 0x08;

/// Upper bound on the up-front allocation while reading; larger payloads grow as bytes arrive, so a
/// huge declared size in a short file cannot trigger a huge allocation.
const MAX_PREALLOC: usize = 64 << 20;

/// How an IDX file is stored on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxEncoding {
    /// Uncompressed bytes.
    Raw,
    /// A gzip stream around the raw bytes.
    Gzip,
}

/// A stack of greyscale images read from an IDX file: `count` images of `rows × cols` bytes, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    count: usize,
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
}

impl IdxImages {
    /// Wraps `pixels` (image after image, each row-major) as `count` images of `rows × cols`.
    ///
    /// Errors unless every dimension is in `1..=u32::MAX` and `pixels.len() == count·rows·cols`.
    pub fn new(count: usize, rows: usize, cols: usize, pixels: Vec<u8>) -> Result<Self, DataError> {
        for (name, value) in [("count", count), ("rows", rows), ("cols", cols)] {
            if value == 0 || u32::try_from(value).is_err() {
                return Err(DataError::Invalid {
                    what: format!("IDX image {name} must be between 1 and {}, got {value}", u32::MAX),
                });
            }
        }
        let needed = count.checked_mul(rows).and_then(|v| v.checked_mul(cols));
        if needed != Some(pixels.len()) {
            return Err(DataError::Invalid {
                what: format!("{count} images of {rows}×{cols} need {needed:?} pixel bytes, got {}", pixels.len()),
            });
        }
        Ok(Self { count, rows, cols, pixels })
    }

    /// Number of images.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Rows per image (height).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns per image (width).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All pixels, image after image, each row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Consumes the images and returns their pixels.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }

    /// Image `i` (`rows·cols` bytes), or `None` if out of range.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let size = self.rows * self.cols;
        self.pixels.get(i.checked_mul(size)?..i.checked_add(1)?.checked_mul(size)?)
    }

    /// The images as a `count × (rows·cols)` matrix of `byte / 255` in `[0, 1]`.
    pub fn to_matrix(&self) -> Matrix {
        let data = self.pixels.iter().map(|&b| f32::from(b) / 255.0).collect();
        // The invariants of `IdxImages` guarantee the shape matches.
        Matrix::new(self.count, self.rows * self.cols, data).expect("IdxImages invariant: pixels = count·rows·cols")
    }
}

/// Reads an IDX image file (raw or gzip).
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io("read", path, e))?;
    parse_images(&bytes, path)
}

/// Reads an IDX label file (raw or gzip).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io("read", path, e))?;
    parse_labels(&bytes, path)
}

/// Bytes before the first label of an IDX label file (magic number and one dimension).
pub const LABELS_HEADER_BYTES: usize = 8;

/// Checks that every label read from the IDX label file `path` names one of `classes` classes
/// (`0..classes`); `of` says where the count comes from (e.g. `the 10 classes of mnist`). The
/// first label outside is an error naming the file, the label, its example and the byte offset of
/// the label in the file ([`LABELS_HEADER_BYTES`] + its index; in the decompressed stream for a gzip
/// file), so that one corrupt byte cannot silently add a class.
pub fn check_labels(labels: &[u8], classes: usize, of: &str, path: &Path) -> Result<(), DataError> {
    match labels.iter().position(|&l| usize::from(l) >= classes) {
        None => Ok(()),
        Some(i) => {
            let gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
            Err(DataError::malformed(
                path,
                format!(
                    "label {} of example {i} (byte offset {}{}) is not one of {of} (0..={})",
                    labels[i],
                    LABELS_HEADER_BYTES + i,
                    if gz { " of the decompressed data" } else { "" },
                    classes.saturating_sub(1)
                ),
            ))
        }
    }
}

/// Parses the bytes of an IDX image file (raw or gzip); `name` is used in error messages.
pub fn parse_idx_images(bytes: &[u8], name: &str) -> Result<IdxImages, DataError> {
    parse_images(bytes, Path::new(name))
}

/// Parses the bytes of an IDX label file (raw or gzip); `name` is used in error messages.
pub fn parse_idx_labels(bytes: &[u8], name: &str) -> Result<Vec<u8>, DataError> {
    parse_labels(bytes, Path::new(name))
}

/// Encodes images as the bytes of an IDX image file.
pub fn encode_idx_images(images: &IdxImages, encoding: IdxEncoding) -> Vec<u8> {
    let mut raw = Vec::with_capacity(16 + images.pixels.len());
    raw.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    for dim in [images.count, images.rows, images.cols] {
        // `IdxImages::new` guarantees every dimension fits in a u32.
        raw.extend_from_slice(&(dim as u32).to_be_bytes());
    }
    raw.extend_from_slice(&images.pixels);
    apply_encoding(raw, encoding)
}

/// Encodes labels as the bytes of an IDX label file; errors if there are none or more than `u32::MAX`.
pub fn encode_idx_labels(labels: &[u8], encoding: IdxEncoding) -> Result<Vec<u8>, DataError> {
    let count = u32::try_from(labels.len()).ok().filter(|&n| n > 0).ok_or_else(|| DataError::Invalid {
        what: format!("IDX label count must be between 1 and {}, got {}", u32::MAX, labels.len()),
    })?;
    let mut raw = Vec::with_capacity(8 + labels.len());
    raw.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    raw.extend_from_slice(&count.to_be_bytes());
    raw.extend_from_slice(labels);
    Ok(apply_encoding(raw, encoding))
}

/// Writes an IDX image file atomically (see [`write_atomic`]).
pub fn write_idx_images(path: impl AsRef<Path>, images: &IdxImages, encoding: IdxEncoding) -> Result<(), DataError> {
    write_atomic(path, &encode_idx_images(images, encoding))
}

/// Writes an IDX label file atomically (see [`write_atomic`]).
pub fn write_idx_labels(path: impl AsRef<Path>, labels: &[u8], encoding: IdxEncoding) -> Result<(), DataError> {
    write_atomic(path, &encode_idx_labels(labels, encoding)?)
}

fn apply_encoding(raw: Vec<u8>, encoding: IdxEncoding) -> Vec<u8> {
    match encoding {
        IdxEncoding::Raw => raw,
        IdxEncoding::Gzip => {
            let mut encoder = GzEncoder::new(Vec::with_capacity(raw.len() / 2), Compression::best());
            // Compressing into a Vec has no I/O that could fail.
            encoder.write_all(&raw).expect("gzip into memory cannot fail");
            encoder.finish().expect("gzip into memory cannot fail")
        }
    }
}

fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, DataError> {
    let (dims, pixels) = parse(bytes, path, Kind::Images)?;
    match dims[..] {
        [count, rows, cols] => {
            IdxImages::new(count, rows, cols, pixels).map_err(|e| DataError::malformed(path, e.to_string()))
        }
        _ => Err(DataError::malformed(path, format!("expected 3 dimensions, got {}", dims.len()))),
    }
}

fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    parse(bytes, path, Kind::Labels).map(|(_, labels)| labels)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn ndims(self) -> u8 {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Images => "image",
            Kind::Labels => "label",
        }
    }
}

/// Parses a raw or gzip IDX stream of `kind`, returning its dimensions and element bytes.
fn parse(bytes: &[u8], path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        parse_stream(MultiGzDecoder::new(bytes), path, kind, true)
    } else {
        parse_stream(bytes, path, kind, false)
    }
}

fn parse_stream(
    mut reader: impl Read,
    path: &Path,
    kind: Kind,
    gzip: bool,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let noun = kind.noun();
    let read_error = |e: std::io::Error, during: &str| -> DataError {
        if gzip && e.kind() != std::io::ErrorKind::UnexpectedEof {
            DataError::malformed(path, format!("corrupt gzip stream while reading the {during}: {e}"))
        } else if gzip {
            DataError::malformed(path, format!("gzip stream or IDX {noun} file ends inside the {during}: {e}"))
        } else {
            DataError::malformed(path, format!("file ends inside the {during} ({e})"))
        }
    };

    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic).map_err(|e| read_error(e, "4-byte magic number"))?;
    let magic_value = u32::from_be_bytes(magic);
    if magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::malformed(
            path,
            format!("not an IDX file: magic number 0x{magic_value:08x}, expected 0x{:08x}", expected_magic(kind)),
        ));
    }
    if magic[2] != UBYTE {
        return Err(DataError::malformed(
            path,
            format!("unsupported IDX element type 0x{:02x} (only unsigned bytes, 0x08, are supported)", magic[2]),
        ));
    }
    if magic[3] != kind.ndims() {
        let looks_like = match (kind, magic[3]) {
            (Kind::Images, 1) => " (this looks like a label file)",
            (Kind::Labels, 3) => " (this looks like an image file)",
            _ => "",
        };
        return Err(DataError::malformed(
            path,
            format!("IDX {noun} file must have {} dimension(s), found {}{looks_like}", kind.ndims(), magic[3]),
        ));
    }

    let mut dims = Vec::with_capacity(usize::from(kind.ndims()));
    for d in 0..kind.ndims() {
        let mut buf = [0u8; 4];
        reader.read_exact(&mut buf).map_err(|e| read_error(e, "header dimensions"))?;
        let value = u32::from_be_bytes(buf);
        if value == 0 {
            return Err(DataError::malformed(path, format!("dimension {d} of the header is 0")));
        }
        let value = usize::try_from(value)
            .map_err(|_| DataError::malformed(path, format!("dimension {d} ({value}) does not fit in memory")))?;
        dims.push(value);
    }
    let payload = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
        DataError::malformed(path, format!("declared dimensions {dims:?} overflow the addressable size"))
    })?;

    // Read at most one byte more than declared: enough to detect trailing bytes, never more than
    // is actually present (so a huge declared count in a short file allocates nothing big).
    let limit = u64::try_from(payload).unwrap_or(u64::MAX).saturating_add(1);
    let mut data = Vec::with_capacity(payload.min(MAX_PREALLOC));
    reader.take(limit).read_to_end(&mut data).map_err(|e| read_error(e, "data"))?;
    let shape = dims.iter().map(usize::to_string).collect::<Vec<_>>().join("×");
    match data.len().cmp(&payload) {
        std::cmp::Ordering::Less => Err(DataError::malformed(
            path,
            format!(
                "truncated IDX {noun} file: header declares {shape} = {payload} data bytes but only {} are present",
                data.len()
            ),
        )),
        std::cmp::Ordering::Greater => Err(DataError::malformed(
            path,
            format!("IDX {noun} file has trailing bytes after the {payload} data bytes its header ({shape}) declares"),
        )),
        std::cmp::Ordering::Equal => Ok((dims, data)),
    }
}

fn expected_magic(kind: Kind) -> u32 {
    match kind {
        Kind::Images => IMAGES_MAGIC,
        Kind::Labels => LABELS_MAGIC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IdxImages {
        IdxImages::new(3, 2, 4, (0..24).collect()).unwrap()
    }

    #[test]
    fn round_trip_raw_and_gzip() {
        for enc in [IdxEncoding::Raw, IdxEncoding::Gzip] {
            let bytes = encode_idx_images(&sample(), enc);
            assert_eq!(bytes.starts_with(&GZIP_MAGIC), enc == IdxEncoding::Gzip);
            assert_eq!(parse_idx_images(&bytes, "x").unwrap(), sample());
            let labels = encode_idx_labels(&[1, 2, 3], enc).unwrap();
            assert_eq!(parse_idx_labels(&labels, "x").unwrap(), vec![1, 2, 3]);
        }
    }

    #[test]
    fn matrix_is_scaled_to_unit_interval() {
        let m = IdxImages::new(1, 1, 3, vec![0, 51, 255]).unwrap().to_matrix();
        assert_eq!(m.shape(), (1, 3));
        assert_eq!(m.as_slice(), &[0.0, 0.2, 1.0]);
    }

    #[test]
    fn image_accessor() {
        let s = sample();
        assert_eq!(s.image(1).unwrap(), &(8..16).collect::<Vec<u8>>()[..]);
        assert!(s.image(3).is_none());
        assert!(s.image(usize::MAX).is_none());
    }

    #[test]
    fn new_rejects_bad_shapes() {
        assert!(IdxImages::new(0, 2, 2, vec![]).is_err());
        assert!(IdxImages::new(2, 2, 2, vec![0; 7]).is_err());
        assert!(IdxImages::new(usize::MAX, usize::MAX, 2, vec![]).is_err());
        assert!(encode_idx_labels(&[], IdxEncoding::Raw).is_err());
    }
}
