//! The embedded default dataset: a class-stratified subset of the real Fashion-MNIST, compiled into
//! the crate so that `embedded` works without any files. See `embedded/README.md` for provenance.

use crate::dataset::{DataSource, Dataset};
use crate::error::DataError;
use crate::idx::{parse_idx_images, parse_idx_labels};

/// Training images kept per class: the first this many of each class, in file order.
pub const TRAIN_PER_CLASS: usize = 600;
/// Test images kept per class: the first this many of each class, in file order.
pub const TEST_PER_CLASS: usize = 100;
/// Name given to the embedded dataset.
pub const EMBEDDED_NAME: &str = "fashion-mnist-embedded";

const TRAIN_IMAGES: &[u8] = include_bytes!("../embedded/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../embedded/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../embedded/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../embedded/t10k-labels-idx1-ubyte.gz");

/// Where the embedded subset comes from and how it was selected (one paragraph, for `--help` or logs).
pub fn embedded_provenance() -> &'static str {
    "Embedded subset of Fashion-MNIST by Zalando Research (https://github.com/zalandoresearch/fashion-mnist, \
     MIT licence, Copyright (c) 2017 Zalando SE), taken from the Debian package dataset-fashion-mnist: \
     the first 600 training images and the first 100 test images of each of the 10 classes, in file order \
     (6000 train + 1000 test)."
}

/// Parses the embedded subset.
pub(crate) fn load_embedded() -> Result<Dataset, DataError> {
    let name = |file: &str| format!("<embedded>/{file}");
    let train = (
        parse_idx_images(TRAIN_IMAGES, &name("train-images-idx3-ubyte.gz"))?,
        parse_idx_labels(TRAIN_LABELS, &name("train-labels-idx1-ubyte.gz"))?,
    );
    let test = (
        parse_idx_images(TEST_IMAGES, &name("t10k-images-idx3-ubyte.gz"))?,
        parse_idx_labels(TEST_LABELS, &name("t10k-labels-idx1-ubyte.gz"))?,
    );
    Dataset::from_idx(EMBEDDED_NAME, DataSource::Embedded, train, test)
}
