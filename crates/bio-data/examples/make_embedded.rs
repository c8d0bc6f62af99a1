//! Regenerates the embedded Fashion-MNIST subset from the full dataset.
//!
//! ```text
//! cargo run -p bio-data --example make_embedded -- /usr/share/datasets/fashion-mnist crates/bio-data/embedded
//! ```
//!
//! Selection rule: the first `TRAIN_PER_CLASS` training images and the first `TEST_PER_CLASS` test
//! images of each class, in file order (so the classes stay interleaved as in the source files).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bio_data::embedded::{TEST_PER_CLASS, TRAIN_PER_CLASS};
use bio_data::{
    DataError, IdxEncoding, IdxImages, ensure_output_dir, read_idx_images, read_idx_labels, write_idx_images,
    write_idx_labels,
};

/// Finds `base` or `base.gz` in `dir`.
fn locate(dir: &Path, base: &str) -> PathBuf {
    let raw = dir.join(base);
    if raw.is_file() { raw } else { dir.join(format!("{base}.gz")) }
}

/// Copies the first `per_class` examples of each class (in file order) from `src` to `dst`.
fn subset(src: &Path, dst: &Path, prefix: &str, per_class: usize) -> Result<usize, DataError> {
    let images_name = format!("{prefix}-images-idx3-ubyte");
    let labels_name = format!("{prefix}-labels-idx1-ubyte");
    let images = read_idx_images(locate(src, &images_name))?;
    let labels = read_idx_labels(locate(src, &labels_name))?;
    let mut taken = [0usize; 256];
    let mut keep_pixels = Vec::new();
    let mut keep_labels = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        let count = &mut taken[usize::from(label)];
        if *count < per_class {
            *count += 1;
            keep_pixels.extend_from_slice(images.image(i).expect("label count equals image count"));
            keep_labels.push(label);
        }
    }
    if let Some((class, &n)) = taken.iter().enumerate().find(|&(_, &n)| n > 0 && n < per_class) {
        return Err(DataError::NotEnoughExamples { class, available: n, requested: per_class });
    }
    let out = IdxImages::new(keep_labels.len(), images.rows(), images.cols(), keep_pixels)?;
    write_idx_images(dst.join(format!("{images_name}.gz")), &out, IdxEncoding::Gzip)?;
    write_idx_labels(dst.join(format!("{labels_name}.gz")), &keep_labels, IdxEncoding::Gzip)?;
    Ok(keep_labels.len())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = &args[..] else {
        eprintln!("usage: make_embedded SOURCE_DIR OUTPUT_DIR");
        return ExitCode::FAILURE;
    };
    let (src, dst) = (Path::new(src), Path::new(dst));
    let result = ensure_output_dir(dst)
        .and_then(|()| subset(src, dst, "train", TRAIN_PER_CLASS))
        .and_then(|train| Ok((train, subset(src, dst, "t10k", TEST_PER_CLASS)?)));
    match result {
        Ok((train, test)) => {
            println!("wrote {train} training and {test} test images to {}", dst.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
