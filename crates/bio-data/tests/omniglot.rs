//! The Omniglot loader: round trips through zips made here, refusals of bad zips, and the shipped files.

use std::io::{Cursor, Write};

use bio_data::omniglot::{
    self, InkImage, background_dataset, character_labels, parse_background, parse_runs, read_zip_files,
};
use bio_data::{DataError, load};
use zip::write::SimpleFileOptions;

/// A 1-bit greyscale PNG (as Omniglot's): ink (true) is black (0), background white (1).
fn png_bytes(im: &InkImage) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, im.width as u32, im.height as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        let mut w = enc.write_header().unwrap();
        let stride = im.width.div_ceil(8);
        let mut data = vec![0u8; stride * im.height];
        for r in 0..im.height {
            for c in 0..im.width {
                if !im.ink[r * im.width + c] {
                    data[r * stride + c / 8] |= 0x80 >> (c % 8);
                }
            }
        }
        w.write_image_data(&data).unwrap();
    }
    out
}

/// A zip of `(path, bytes)` files; `deflate` picks the compression.
fn zip_bytes(files: &[(String, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let opts = SimpleFileOptions::default().compression_method(method);
    for (path, data) in files {
        zw.start_file(path.as_str(), opts).unwrap();
        zw.write_all(data).unwrap();
    }
    zw.finish().unwrap().into_inner()
}

/// A 6×6 image inked where `(5i + k) mod 11 < 3` (pixel `i`): 11 distinct patterns, neighbours in `k` differ.
fn pattern(k: usize) -> InkImage {
    InkImage { height: 6, width: 6, ink: (0..36).map(|i| (i * 5 + k) % 11 < 3).collect() }
}

fn background_files(alphabets: &[&str], characters: usize) -> (Vec<(String, Vec<u8>)>, Vec<InkImage>) {
    let (mut files, mut images) = (Vec::new(), Vec::new());
    let mut k = 0;
    for a in alphabets {
        for c in 1..=characters {
            for d in 1..=20 {
                let im = pattern(k);
                files.push((format!("bg/{a}/character{c:02}/{:04}_{d:02}.png", 100 + c), png_bytes(&im)));
                images.push(im);
                k += 1;
            }
        }
    }
    (files, images)
}

#[test]
fn background_round_trip_through_a_zip_made_here() {
    let (mut files, images) = background_files(&["Beta", "Alpha"], 2);
    files.reverse(); // the parser sorts by alphabet, character and drawer
    for deflate in [false, true] {
        let parsed = parse_background(&zip_bytes(&files, deflate), "test.zip").unwrap();
        assert_eq!(parsed.len(), 80);
        // Sorted: Alpha first, whose images were made after Beta's.
        assert_eq!(
            (parsed[0].alphabet.as_str(), parsed[0].character.as_str(), parsed[0].drawer),
            ("Alpha", "character01", 1)
        );
        assert_eq!(parsed[0].image, images[40], "ink decoded exactly");
        assert_eq!(parsed[79].image, images[39]);
        assert_eq!(parsed[19].drawer, 20);
        let labels = character_labels(&parsed);
        assert_eq!(labels[0], 0);
        assert_eq!(labels[20], 1);
        assert_eq!(labels[79], 3);
        let data = background_dataset(&parsed, "toy", 3).unwrap();
        assert_eq!((data.classes, data.train.len(), data.test.len(), data.image_shape), (4, 64, 16, (3, 3)));
        assert_eq!(data.train.labels[..17], [vec![0; 16], vec![1]].concat()[..]);
        assert_eq!(data.train.images.row(0), images[40].resize_area(3).as_slice(), "drawer 1 of Alpha/character01");
        assert_eq!(data.test.images.row(0), images[56].resize_area(3).as_slice(), "drawer 17 of Alpha/character01");
    }
}

#[test]
fn runs_round_trip_through_a_zip_made_here() {
    let mut files = Vec::new();
    for run in ["run02", "run01"] {
        // Test item i belongs to training class (i + 1) mod 3.
        let labels: String = (0..3)
            .map(|i| format!("{run}/test/item{:02}.png {run}/training/class{:02}.png\n", i + 1, (i + 1) % 3 + 1))
            .collect();
        files.push((format!("{run}/class_labels.txt"), labels.into_bytes()));
        for i in 0..3 {
            files.push((format!("{run}/training/class{:02}.png", i + 1), png_bytes(&pattern(i))));
            files.push((format!("{run}/test/item{:02}.png", i + 1), png_bytes(&pattern(10 + i))));
        }
    }
    let runs = parse_runs(&zip_bytes(&files, true), "runs.zip").unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].name, "run01");
    assert_eq!(runs[0].answers, vec![1, 2, 0]);
    assert_eq!(runs[0].training[2], pattern(2));
    assert_eq!(runs[0].test[0], pattern(10));
}

fn archive_error(result: Result<impl std::fmt::Debug, DataError>) -> String {
    let err = result.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Archive { .. }), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn bad_zips_are_refused_with_one_line() {
    // Not a zip at all.
    let msg = archive_error(parse_background(b"this is not a zip file", "x.zip"));
    assert!(msg.starts_with("x.zip: not a readable zip archive"), "{msg}");
    // A truncated zip (its central directory is gone).
    let (files, _) = background_files(&["Alpha"], 1);
    let good = zip_bytes(&files, true);
    let msg = archive_error(parse_background(&good[..good.len() / 2], "cut.zip"));
    assert!(msg.starts_with("cut.zip: not a readable zip archive"), "{msg}");
    // A corrupt entry: flip bytes inside the first file's stored data; the CRC check catches it.
    let mut stored = zip_bytes(&files, false);
    let at = 30 + files[0].0.len() + 20;
    stored[at] ^= 0xFF;
    stored[at + 1] ^= 0xFF;
    let msg = archive_error(parse_background(&stored, "crc.zip"));
    assert!(msg.starts_with("crc.zip: "), "{msg}");
    // A foreign zip: PNGs elsewhere, no PNG at all, or a file named .png that is not one.
    let foreign = zip_bytes(&[("pictures/cat.png".into(), png_bytes(&pattern(0)))], true);
    let msg = archive_error(parse_background(&foreign, "f.zip"));
    assert!(msg.contains("not an Omniglot background zip: unexpected image path `pictures/cat.png`"), "{msg}");
    let empty = zip_bytes(&[("readme.txt".into(), b"hello".to_vec())], true);
    assert!(archive_error(parse_background(&empty, "e.zip")).contains("holds no PNG image"));
    let fake = zip_bytes(&[("bg/A/character01/0001_01.png".into(), b"GIF89a".to_vec())], true);
    let msg = archive_error(parse_background(&fake, "p.zip"));
    assert!(msg.starts_with("p.zip/bg/A/character01/0001_01.png: not a readable PNG image"), "{msg}");
    // A background zip is not a runs zip.
    assert!(archive_error(parse_runs(&good, "g.zip")).contains("not an Omniglot runs zip: unexpected entry"));
    // A runs zip whose labels do not cover every test image.
    let partial = zip_bytes(
        &[
            ("run01/class_labels.txt".into(), b"run01/test/item01.png run01/training/class01.png\n".to_vec()),
            ("run01/training/class01.png".into(), png_bytes(&pattern(0))),
            ("run01/test/item01.png".into(), png_bytes(&pattern(1))),
            ("run01/test/item02.png".into(), png_bytes(&pattern(2))),
        ],
        true,
    );
    assert!(archive_error(parse_runs(&partial, "r.zip")).contains("does not list every test image"));
    // Directories are skipped, files kept in order.
    assert_eq!(read_zip_files(&good, "g.zip").unwrap().len(), 20);
}

#[test]
fn shipped_files_verify_and_load() {
    let images = omniglot::background_small1().unwrap();
    assert_eq!(images.len(), 2720);
    assert_eq!(character_labels(&images).last(), Some(&135));
    let ink = images.iter().map(|b| b.image.ink_count()).sum::<usize>() as f64 / (2720.0 * 105.0 * 105.0);
    assert!((0.01..0.2).contains(&ink), "ink is the minority: {ink}");
    let data = load("omniglot-small1", None).unwrap();
    assert_eq!((data.classes, data.train.len(), data.test.len(), data.image_shape), (136, 2176, 544, (28, 28)));
    assert!(data.train.images.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(load("omniglot-small1-20", None).unwrap().image_shape, (20, 20));
    let runs = omniglot::all_runs().unwrap();
    assert_eq!(runs.len(), 20);
    assert!(runs.iter().all(|r| r.training.len() == 20 && r.test.len() == 20 && r.training[0].height == 105));
    // Every run's answers are a permutation of its 20 classes.
    for r in &runs {
        let mut a = r.answers.clone();
        a.sort_unstable();
        assert_eq!(a, (0..20).collect::<Vec<_>>(), "{}", r.name);
    }
}
