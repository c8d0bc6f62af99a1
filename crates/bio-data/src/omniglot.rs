//! Omniglot (Lake, Salakhutdinov & Tenenbaum 2015), shipped in the repository: the "background small 1"
//! images a model may learn from, and the 20 runs of the 20-way within-alphabet one-shot
//! classification task, which are the test and are never trained or tuned on. See
//! `omniglot/README.md` beside this crate's sources for provenance and licence (MIT).
//!
//! Both zips are compiled into the crate (`include_bytes!`) and their SHA-256 is checked before they
//! are read. Images are 105×105 PNGs of black ink on white; here ink is 1 and background 0
//! ([`InkImage`]), and [`InkImage::resize_area`] brings them to the side a model takes (28 by default).
//!
//! `omniglot-small1` as a dataset ([`background_dataset`]): the 136 characters of the five background
//! alphabets are the classes, labelled 0..136 in the order of their paths (alphabet, then character);
//! the split is by drawer: drawers 1–16 of every character are the training split ([`TRAIN_DRAWERS`]),
//! drawers 17–20 the test split of the background set ([`TEST_DRAWERS`]), which is a held-out check
//! of the background task and the place to tune; the one-shot runs ([`all_runs`]) are the real test.

use std::io::{Cursor, Read};
use std::ops::RangeInclusive;

use bio_core::Matrix;
use sha2::{Digest, Sha256};

use crate::dataset::{DataSource, Dataset, Split};
use crate::error::DataError;

/// Name of the dataset at the default side, as `--dataset` takes it.
pub const SMALL1_NAME: &str = "omniglot-small1";
/// Side of the images as drawn in the zips.
pub const NATIVE_SIDE: usize = 105;
/// Side images are resized to unless another is asked (`omniglot-small1-<side>`).
pub const DEFAULT_SIDE: usize = 28;
/// Drawers whose images form the training split of `omniglot-small1`.
pub const TRAIN_DRAWERS: RangeInclusive<u8> = 1..=16;
/// Drawers whose images form the (background) test split of `omniglot-small1`.
pub const TEST_DRAWERS: RangeInclusive<u8> = 17..=20;
/// File name of the background images' zip.
pub const SMALL1_ZIP: &str = "images_background_small1.zip";
/// File name of the one-shot runs' zip.
pub const RUNS_ZIP: &str = "all_runs.zip";
/// SHA-256 of [`SMALL1_ZIP`], as in `omniglot/SHA256SUMS`.
pub const SMALL1_SHA256: &str = "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4";
/// SHA-256 of [`RUNS_ZIP`], as in `omniglot/SHA256SUMS`.
pub const RUNS_SHA256: &str = "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325";
/// Number of runs of the one-shot task.
pub const RUNS: usize = 20;
/// Classes (and test images) per run.
pub const WAYS: usize = 20;

const SMALL1_BYTES: &[u8] = include_bytes!("../omniglot/images_background_small1.zip");
const RUNS_BYTES: &[u8] = include_bytes!("../omniglot/all_runs.zip");

/// Where the shipped Omniglot files come from (one paragraph).
pub fn omniglot_provenance() -> &'static str {
    "Omniglot by Brenden Lake (https://github.com/brendenlake/omniglot, commit 057f034, folder python/, MIT \
     licence, Copyright (c) 2015 Brenden Lake): images_background_small1.zip (5 background alphabets, 136 \
     characters x 20 drawers) and one-shot-classification/all_runs.zip (the 20 runs of Lake et al. 2015), \
     unmodified bytes."
}

fn archive(name: &str, what: impl Into<String>) -> DataError {
    DataError::Archive { name: name.to_string(), what: what.into() }
}

/// Lower-case hexadecimal SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that `bytes` (called `name` in errors) have the SHA-256 `expected` (hexadecimal).
pub fn verify_sha256(bytes: &[u8], expected: &str, name: &str) -> Result<(), DataError> {
    let found = sha256_hex(bytes);
    if found.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(archive(
            name,
            format!("SHA-256 is {found}, expected {expected}: the file is corrupt or not the shipped one"),
        ))
    }
}

/// A binary image: `ink[r·width + c]` is true where the pixel is inked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InkImage {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Row-major ink mask.
    pub ink: Vec<bool>,
}

impl InkImage {
    /// Decodes a PNG (any colour type and bit depth): a pixel is ink where its grey level (the mean of
    /// its colour channels, alpha ignored) is below half of the maximum, i.e. black ink on white.
    /// Omniglot's PNGs are 1-bit, so this is exactly "pixel = 0", the rule of Lake's demo.
    pub fn decode_png(bytes: &[u8], name: &str) -> Result<Self, DataError> {
        let bad = |e: png::DecodingError| archive(name, format!("not a readable PNG image: {e}"));
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().map_err(bad)?;
        let mut buf = vec![0u8; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).map_err(bad)?;
        let (width, height) = (info.width as usize, info.height as usize);
        let channels = info.color_type.samples();
        let colour = match info.color_type {
            png::ColorType::GrayscaleAlpha => 1,
            png::ColorType::Rgba => 3,
            _ => channels,
        };
        let ink = (0..width * height)
            .map(|p| {
                let px = &buf[p * channels..p * channels + colour];
                let grey = px.iter().map(|&v| u32::from(v)).sum::<u32>() / colour as u32;
                grey < 128
            })
            .collect();
        Ok(Self { height, width, ink })
    }

    /// Number of inked pixels.
    pub fn ink_count(&self) -> usize {
        self.ink.iter().filter(|&&i| i).count()
    }

    /// Resizes to `side × side` by area averaging: output pixel `(i, j)` covers the source square
    /// `[i·s, (i+1)·s) × [j·s, (j+1)·s)` with `s = height / side` (and `width / side` across), and its
    /// value is the fraction of that square's area that is ink,
    /// `y_ij = (1/s²) Σ_{r,c} ink(r,c) · |[r, r+1) ∩ [i·s, (i+1)·s)| · |[c, c+1) ∩ [j·s, (j+1)·s)|`,
    /// so fractional overlaps at the edges count by their area (105 → 28 is 3.75 source pixels per output
    /// pixel). Values are in `[0, 1]`, ink = 1; total ink is preserved up to the factor `side²/(h·w)`.
    pub fn resize_area(&self, side: usize) -> Vec<f32> {
        let weights = |src: usize| -> Vec<Vec<(usize, f64)>> {
            let scale = src as f64 / side as f64;
            (0..side)
                .map(|i| {
                    let (lo, hi) = (i as f64 * scale, (i + 1) as f64 * scale);
                    (lo.floor() as usize..(hi.ceil() as usize).min(src))
                        .map(|r| (r, ((r + 1) as f64).min(hi) - (r as f64).max(lo)))
                        .filter(|&(_, w)| w > 0.0)
                        .collect()
                })
                .collect()
        };
        let (rows, cols) = (weights(self.height), weights(self.width));
        let area = (self.height as f64 / side as f64) * (self.width as f64 / side as f64);
        let mut out = Vec::with_capacity(side * side);
        for row in &rows {
            for col in &cols {
                let mut sum = 0.0;
                for &(r, wr) in row {
                    for &(c, wc) in col {
                        if self.ink[r * self.width + c] {
                            sum += wr * wc;
                        }
                    }
                }
                out.push((sum / area) as f32);
            }
        }
        out
    }
}

/// Every file of a zip archive (called `name` in errors), as `(path, bytes)` in the archive's order;
/// directories are skipped. A byte string that is not a zip, or an entry that does not decompress
/// (or fails its CRC), is a [`DataError::Archive`].
pub fn read_zip_files(bytes: &[u8], name: &str) -> Result<Vec<(String, Vec<u8>)>, DataError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| archive(name, format!("not a readable zip archive: {e}")))?;
    let mut files = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| archive(name, format!("entry {i} is unreadable: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let path =
            entry.name().map_err(|e| archive(name, format!("entry {i} has an unreadable name: {e}")))?.to_string();
        let mut data = Vec::with_capacity(entry.size().min(1 << 24) as usize);
        entry.read_to_end(&mut data).map_err(|e| archive(name, format!("{path} does not decompress: {e}")))?;
        files.push((path, data));
    }
    Ok(files)
}

/// One image of the background set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackgroundImage {
    /// Alphabet folder, e.g. `Greek`.
    pub alphabet: String,
    /// Character folder within it, e.g. `character01`.
    pub character: String,
    /// Drawer (1–20), from the file name `NNNN_DD.png`.
    pub drawer: u8,
    /// The image.
    pub image: InkImage,
}

/// Parses a background zip (called `name` in errors): every PNG at `<root>/<alphabet>/<character>/
/// <id>_<drawer>.png`, sorted by alphabet, character and drawer. A zip without such images, or with a
/// PNG elsewhere or named otherwise, is refused as foreign.
pub fn parse_background(bytes: &[u8], name: &str) -> Result<Vec<BackgroundImage>, DataError> {
    let mut images = Vec::new();
    for (path, data) in read_zip_files(bytes, name)? {
        if !path.to_ascii_lowercase().ends_with(".png") {
            continue;
        }
        let parts: Vec<&str> = path.split('/').collect();
        let foreign = || archive(name, format!("not an Omniglot background zip: unexpected image path `{path}`"));
        let [_, alphabet, character, file] = parts[..] else {
            return Err(foreign());
        };
        let drawer = file
            .strip_suffix(".png")
            .and_then(|stem| stem.rsplit_once('_'))
            .and_then(|(_, d)| d.parse::<u8>().ok())
            .filter(|d| (1..=20).contains(d))
            .ok_or_else(foreign)?;
        let image = InkImage::decode_png(&data, &format!("{name}/{path}"))?;
        images.push(BackgroundImage { alphabet: alphabet.into(), character: character.into(), drawer, image });
    }
    if images.is_empty() {
        return Err(archive(name, "not an Omniglot background zip: it holds no PNG image"));
    }
    images.sort_by(|a, b| (&a.alphabet, &a.character, a.drawer).cmp(&(&b.alphabet, &b.character, b.drawer)));
    Ok(images)
}

/// The shipped background small 1 images (2720), checksum verified.
pub fn background_small1() -> Result<Vec<BackgroundImage>, DataError> {
    verify_sha256(SMALL1_BYTES, SMALL1_SHA256, SMALL1_ZIP)?;
    parse_background(SMALL1_BYTES, SMALL1_ZIP)
}

/// The class of each image: characters numbered 0.. in the order of [`parse_background`]'s sort.
pub fn character_labels(images: &[BackgroundImage]) -> Vec<usize> {
    let mut labels = Vec::with_capacity(images.len());
    let mut last: Option<(&str, &str)> = None;
    let mut next = 0;
    for im in images {
        let key = (im.alphabet.as_str(), im.character.as_str());
        if last.is_some() && last != Some(key) {
            next += 1;
        }
        last = Some(key);
        labels.push(next);
    }
    labels
}

/// Every image resized to `side` ([`InkImage::resize_area`]), one per row.
pub fn to_matrix<'a>(images: impl IntoIterator<Item = &'a InkImage>, side: usize) -> Matrix {
    let mut data = Vec::new();
    let mut rows = 0;
    for im in images {
        data.extend(im.resize_area(side));
        rows += 1;
    }
    Matrix::new(rows, side * side, data).expect("side² values per row")
}

/// The background images as a classification dataset named `name` at `side × side`: the characters
/// are the classes ([`character_labels`]), drawers [`TRAIN_DRAWERS`] the training split and
/// [`TEST_DRAWERS`] the test split.
pub fn background_dataset(images: &[BackgroundImage], name: &str, side: usize) -> Result<Dataset, DataError> {
    if side == 0 {
        return Err(DataError::Invalid { what: "the image side must be at least 1".into() });
    }
    let labels = character_labels(images);
    let part = |drawers: &RangeInclusive<u8>| -> Result<Split, DataError> {
        let rows: Vec<usize> = (0..images.len()).filter(|&i| drawers.contains(&images[i].drawer)).collect();
        Split::new(to_matrix(rows.iter().map(|&i| &images[i].image), side), rows.iter().map(|&i| labels[i]).collect())
    };
    let (train, test) = (part(&TRAIN_DRAWERS)?, part(&TEST_DRAWERS)?);
    let classes = labels.last().map_or(0, |l| l + 1);
    if classes < 2 || train.is_empty() || test.is_empty() {
        return Err(DataError::Inconsistent {
            dataset: name.into(),
            what: format!("{classes} characters, {} training and {} test images", train.len(), test.len()),
        });
    }
    let source = DataSource::Directory(format!("<shipped omniglot/{SMALL1_ZIP}, drawers 1-16 | 17-20>").into());
    Ok(Dataset { name: name.into(), source, train, test, classes, image_shape: (side, side) })
}

/// The side asked by a dataset spec: `omniglot-small1` → [`DEFAULT_SIDE`], `omniglot-small1-<side>` →
/// `side`; `None` for any other spec.
pub fn small1_side(spec: &str) -> Option<usize> {
    let lower = spec.to_ascii_lowercase();
    let rest = lower.strip_prefix(SMALL1_NAME)?;
    if rest.is_empty() {
        return Some(DEFAULT_SIDE);
    }
    rest.strip_prefix('-')?.parse::<usize>().ok().filter(|&s| (1..=NATIVE_SIDE).contains(&s))
}

/// Loads `omniglot-small1` (or `omniglot-small1-<side>`) from the shipped zip.
pub fn load_small1(spec: &str) -> Result<Dataset, DataError> {
    let side = small1_side(spec).ok_or_else(|| DataError::UnknownDataset { spec: spec.to_string() })?;
    let name = if side == DEFAULT_SIDE { SMALL1_NAME.to_string() } else { format!("{SMALL1_NAME}-{side}") };
    background_dataset(&background_small1()?, &name, side)
}

/// One run of the one-shot task: 20 training images (one per class) and 20 test images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneShotRun {
    /// Folder name, e.g. `run01`.
    pub name: String,
    /// Training images, sorted by file name (`class01` … `class20`).
    pub training: Vec<InkImage>,
    /// Test images, sorted by file name (`item01` … `item20`).
    pub test: Vec<InkImage>,
    /// `answers[i]`: the index in `training` of test image `i`'s class (from `class_labels.txt`).
    pub answers: Vec<usize>,
}

/// Parses a runs zip (called `name` in errors): each `runNN/` with `class_labels.txt` (lines
/// `runNN/test/itemXX.png runNN/training/classYY.png`), `training/*.png` and `test/*.png`; runs sorted
/// by name. Every test and training image must be listed exactly once.
pub fn parse_runs(bytes: &[u8], name: &str) -> Result<Vec<OneShotRun>, DataError> {
    use std::collections::BTreeMap;
    let foreign = |what: String| archive(name, format!("not an Omniglot runs zip: {what}"));
    /// A run's `class_labels.txt`, training and test PNGs by path.
    type RunFiles = (Option<String>, BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>);
    let mut runs: BTreeMap<String, RunFiles> = BTreeMap::new();
    for (path, data) in read_zip_files(bytes, name)? {
        let parts: Vec<&str> = path.split('/').collect();
        match parts[..] {
            [run, "class_labels.txt"] => {
                let text = String::from_utf8(data).map_err(|_| foreign(format!("{path} is not text")))?;
                runs.entry(run.into()).or_default().0 = Some(text);
            }
            [run, "training", file] if file.ends_with(".png") => {
                runs.entry(run.into()).or_default().1.insert(path.clone(), data);
            }
            [run, "test", file] if file.ends_with(".png") => {
                runs.entry(run.into()).or_default().2.insert(path.clone(), data);
            }
            _ => return Err(foreign(format!("unexpected entry `{path}`"))),
        }
    }
    if runs.is_empty() {
        return Err(foreign("it holds no run".into()));
    }
    let mut out = Vec::with_capacity(runs.len());
    for (run, (labels, training, test)) in runs {
        let labels = labels.ok_or_else(|| foreign(format!("{run} has no class_labels.txt")))?;
        let train_names: Vec<&String> = training.keys().collect();
        let test_names: Vec<&String> = test.keys().collect();
        let mut answers = vec![usize::MAX; test_names.len()];
        for line in labels.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || foreign(format!("{run}/class_labels.txt: bad line `{line}`"));
            let mut words = line.split_whitespace();
            let (Some(t), Some(c), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad());
            };
            let ti = test_names.iter().position(|n| n.as_str() == t).ok_or_else(bad)?;
            let ci = train_names.iter().position(|n| n.as_str() == c).ok_or_else(bad)?;
            if answers[ti] != usize::MAX {
                return Err(bad());
            }
            answers[ti] = ci;
        }
        if answers.contains(&usize::MAX) || train_names.is_empty() {
            return Err(foreign(format!("{run}: class_labels.txt does not list every test image")));
        }
        let decode = |m: &BTreeMap<String, Vec<u8>>| -> Result<Vec<InkImage>, DataError> {
            m.iter().map(|(p, d)| InkImage::decode_png(d, &format!("{name}/{p}"))).collect()
        };
        out.push(OneShotRun { name: run, training: decode(&training)?, test: decode(&test)?, answers });
    }
    Ok(out)
}

/// The shipped 20 one-shot runs, checksum verified.
pub fn all_runs() -> Result<Vec<OneShotRun>, DataError> {
    verify_sha256(RUNS_BYTES, RUNS_SHA256, RUNS_ZIP)?;
    let runs = parse_runs(RUNS_BYTES, RUNS_ZIP)?;
    if runs.len() != RUNS || runs.iter().any(|r| r.training.len() != WAYS || r.test.len() != WAYS) {
        return Err(archive(RUNS_ZIP, format!("expected {RUNS} runs of {WAYS} + {WAYS} images")));
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_area_averages_ink_by_overlap() {
        // 4×4 → 2×2: each output pixel is the mean of a 2×2 block.
        let ink = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1].map(|v| v == 1).to_vec();
        let im = InkImage { height: 4, width: 4, ink };
        assert_eq!(im.resize_area(2), vec![0.75, 0.0, 0.0, 1.0]);
        // 3×3 → 2×2: 1.5 source pixels per output pixel; the centre pixel is split four ways.
        let mut ink = vec![false; 9];
        ink[4] = true;
        let im = InkImage { height: 3, width: 3, ink };
        let out = im.resize_area(2);
        assert!(out.iter().all(|&v| (v - 0.25 / 2.25).abs() < 1e-6), "{out:?}");
        // Total ink is preserved up to the area factor, for 105 → 28.
        let ink: Vec<bool> = (0..105 * 105).map(|i| (i * 7919) % 13 < 4).collect();
        let im = InkImage { height: 105, width: 105, ink };
        let total: f64 = im.resize_area(28).iter().map(|&v| f64::from(v)).sum();
        let expect = im.ink_count() as f64 * (28.0 * 28.0) / (105.0 * 105.0);
        assert!((total - expect).abs() < 1e-3, "{total} vs {expect}");
    }

    #[test]
    fn small1_side_parses_the_spec() {
        assert_eq!(small1_side("omniglot-small1"), Some(28));
        assert_eq!(small1_side("Omniglot-Small1-20"), Some(20));
        assert_eq!(small1_side("omniglot-small1-0"), None);
        assert_eq!(small1_side("omniglot-small1-106"), None);
        assert_eq!(small1_side("omniglot-small2"), None);
        assert_eq!(small1_side("mnist"), None);
    }

    #[test]
    fn sha256_of_a_known_string() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let err = verify_sha256(b"abc", SMALL1_SHA256, "x.zip").unwrap_err().to_string();
        assert!(err.starts_with("x.zip: SHA-256 is ba7816bf"), "{err}");
    }
}
