//! IDX reading and writing: round trips and rejection of malformed files (never a panic).

use bio_data::{
    DataError, IdxEncoding, IdxImages, encode_idx_images, encode_idx_labels, parse_idx_images, parse_idx_labels,
    read_idx_images, read_idx_labels, write_idx_images, write_idx_labels,
};
use proptest::prelude::*;

fn images(count: usize, rows: usize, cols: usize, seed: u8) -> IdxImages {
    let pixels = (0..count * rows * cols).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    IdxImages::new(count, rows, cols, pixels).unwrap()
}

fn malformed_message(result: Result<impl std::fmt::Debug, DataError>) -> String {
    match result {
        Err(e @ DataError::Malformed { .. }) => e.to_string(),
        other => panic!("expected a Malformed error, got {other:?}"),
    }
}

fn raw_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

#[test]
fn file_round_trip_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(5, 3, 4, 7);
    let labels = vec![0u8, 3, 9, 1, 1];
    for (enc, suffix) in [(IdxEncoding::Raw, ""), (IdxEncoding::Gzip, ".gz")] {
        // Compression is detected from content: also store gzip under a name without `.gz`.
        for name in [format!("imgs{suffix}"), format!("imgs-misnamed-{suffix:?}")] {
            let path = dir.path().join(&name);
            write_idx_images(&path, &imgs, enc).unwrap();
            assert_eq!(read_idx_images(&path).unwrap(), imgs);
        }
        let path = dir.path().join(format!("labels{suffix}"));
        write_idx_labels(&path, &labels, enc).unwrap();
        assert_eq!(read_idx_labels(&path).unwrap(), labels);
    }
}

#[test]
fn missing_file_is_io_error_naming_it() {
    let err = read_idx_images("/nonexistent/dir/train-images-idx3-ubyte").unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/dir/train-images-idx3-ubyte"), "{err}");
}

#[test]
fn truncated_and_extended_files_are_rejected() {
    for enc in [IdxEncoding::Raw, IdxEncoding::Gzip] {
        let raw = encode_idx_images(&images(2, 2, 2, 0), IdxEncoding::Raw);
        let mut short = raw[..raw.len() - 1].to_vec();
        let mut long = raw.clone();
        long.push(0);
        if enc == IdxEncoding::Gzip {
            short = gzip(&short);
            long = gzip(&long);
        }
        let msg = malformed_message(parse_idx_images(&short, "short.idx"));
        assert!(msg.contains("short.idx") && msg.contains("truncated"), "{msg}");
        let msg = malformed_message(parse_idx_images(&long, "long.idx"));
        assert!(msg.contains("long.idx") && msg.contains("trailing"), "{msg}");
    }
    let labels = encode_idx_labels(&[1, 2, 3], IdxEncoding::Raw).unwrap();
    malformed_message(parse_idx_labels(&labels[..labels.len() - 1], "l"));
    malformed_message(parse_idx_labels(&[labels.as_slice(), &[0]].concat(), "l"));
    // Header itself cut short.
    for cut in 0..16 {
        let raw = encode_idx_images(&images(1, 1, 1, 0), IdxEncoding::Raw);
        malformed_message(parse_idx_images(&raw[..cut.min(raw.len())], "cut"));
    }
}

#[test]
fn wrong_magic_and_dims_are_rejected() {
    let body = [0u8; 8];
    let cases: [(Vec<u8>, &str); 5] = [
        (raw_header(0x1234_0803, &[2, 2, 2]), "not an IDX file"),
        (raw_header(0x0000_0d03, &[2, 2, 2]), "element type"),
        (raw_header(0x0000_0802, &[2, 4]), "3 dimension"),
        (raw_header(0x0000_0801, &[8]), "label file"),
        (raw_header(0x0000_0803, &[2, 0, 2]), "is 0"),
    ];
    for (mut bytes, expected) in cases {
        bytes.extend_from_slice(&body);
        let msg = malformed_message(parse_idx_images(&bytes, "bad"));
        assert!(msg.contains(expected), "{msg}");
    }
    let mut image_file = raw_header(0x0000_0803, &[1, 1, 1]);
    image_file.push(0);
    let msg = malformed_message(parse_idx_labels(&image_file, "bad"));
    assert!(msg.contains("image file"), "{msg}");
    malformed_message(parse_idx_labels(&raw_header(0x0000_0801, &[0]), "zero"));
}

#[test]
fn huge_declared_sizes_are_rejected_without_allocating() {
    for enc in [IdxEncoding::Raw, IdxEncoding::Gzip] {
        let mut bytes = raw_header(0x0000_0803, &[u32::MAX, u32::MAX, u32::MAX]);
        bytes.extend_from_slice(&[1, 2, 3]);
        let bytes = if enc == IdxEncoding::Gzip { gzip(&bytes) } else { bytes };
        malformed_message(parse_idx_images(&bytes, "huge"));
        let mut labels = raw_header(0x0000_0801, &[u32::MAX]);
        labels.push(1);
        let labels = if enc == IdxEncoding::Gzip { gzip(&labels) } else { labels };
        let msg = malformed_message(parse_idx_labels(&labels, "huge"));
        assert!(msg.contains("truncated"), "{msg}");
    }
}

#[test]
fn corrupt_gzip_is_rejected() {
    let gz = encode_idx_images(&images(4, 3, 3, 1), IdxEncoding::Gzip);
    // Damage the CRC-32 in the gzip trailer: the data inflate fine but the checksum fails.
    let mut bad_crc = gz.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let msg = malformed_message(parse_idx_images(&bad_crc, "crc.gz"));
    assert!(msg.contains("gzip"), "{msg}");
    // Cut inside the deflate stream.
    malformed_message(parse_idx_images(&gz[..gz.len() / 2], "cut.gz"));
    // Just the gzip magic.
    malformed_message(parse_idx_images(&[0x1f, 0x8b], "magic.gz"));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_random_shapes(count in 1usize..6, rows in 1usize..6, cols in 1usize..6, seed: u8, gz: bool,
                                labels in proptest::collection::vec(any::<u8>(), 1..20)) {
        let enc = if gz { IdxEncoding::Gzip } else { IdxEncoding::Raw };
        let imgs = images(count, rows, cols, seed);
        prop_assert_eq!(parse_idx_images(&encode_idx_images(&imgs, enc), "p").unwrap(), imgs);
        prop_assert_eq!(parse_idx_labels(&encode_idx_labels(&labels, enc).unwrap(), "p").unwrap(), labels);
    }

    #[test]
    fn every_truncation_is_an_error(count in 1usize..4, rows in 1usize..5, cols in 1usize..5, gz: bool,
                                    cut in any::<prop::sample::Index>()) {
        let enc = if gz { IdxEncoding::Gzip } else { IdxEncoding::Raw };
        let bytes = encode_idx_images(&images(count, rows, cols, 3), enc);
        let cut = cut.index(bytes.len()); // strictly shorter than the file
        prop_assert!(parse_idx_images(&bytes[..cut], "t").is_err());
        let labels = encode_idx_labels(&vec![1u8; count * rows], enc).unwrap();
        let cut = cut.min(labels.len() - 1);
        prop_assert!(parse_idx_labels(&labels[..cut], "t").is_err());
    }

    #[test]
    fn appended_bytes_are_an_error(extra in proptest::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = encode_idx_images(&images(2, 3, 3, 9), IdxEncoding::Raw);
        bytes.extend_from_slice(&extra);
        prop_assert!(parse_idx_images(&bytes, "x").is_err());
        prop_assert!(parse_idx_images(&gzip(&bytes), "x").is_err());
    }

    #[test]
    fn byte_flips_never_panic(gz: bool, flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6)) {
        let enc = if gz { IdxEncoding::Gzip } else { IdxEncoding::Raw };
        let original = images(3, 4, 4, 5);
        let mut bytes = encode_idx_images(&original, enc);
        for (at, mask) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        // Flips in the pixel data of a raw file are undetectable; anything else must be an error.
        match parse_idx_images(&bytes, "flipped") {
            Ok(parsed) => prop_assert_eq!((parsed.count(), parsed.rows(), parsed.cols()), (3, 4, 4)),
            Err(e) => prop_assert!(matches!(e, DataError::Malformed { .. }), "{}", e),
        }
        let _ = parse_idx_labels(&bytes, "flipped");
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), gz_prefix: bool) {
        let bytes = if gz_prefix { [&[0x1f, 0x8b][..], &bytes].concat() } else { bytes };
        let _ = parse_idx_images(&bytes, "r");
        let _ = parse_idx_labels(&bytes, "r");
    }
}
