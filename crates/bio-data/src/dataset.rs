//! Datasets ([`Dataset`], loaded by [`crate::load()`]) and the [`Split`] operations used for
//! training: batching, shuffling and subsets.

use std::path::PathBuf;

use bio_core::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::DataError;
use crate::idx::IdxImages;

/// One part (train or test) of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// One image per row, `n × (h·w)`, values `byte / 255` in `[0, 1]`.
    pub images: Matrix,
    /// The class of each row of `images`.
    pub labels: Vec<usize>,
}

/// A mini-batch produced by [`Split::batches`].
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The batch's images, one per row.
    pub images: Matrix,
    /// The class of each row.
    pub labels: Vec<usize>,
    /// The row of each example in the split it came from.
    pub indices: Vec<usize>,
}

/// Where a dataset was loaded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The Fashion-MNIST subset compiled into this crate.
    Embedded,
    /// A directory holding the four IDX files.
    Directory(PathBuf),
}

/// A labelled image-classification dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Short name, e.g. `fashion-mnist`.
    pub name: String,
    /// Where it was loaded from.
    pub source: DataSource,
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
    /// Number of classes (largest label + 1).
    pub classes: usize,
    /// `(height, width)` of each image.
    pub image_shape: (usize, usize),
}

impl Dataset {
    /// Number of input features per example (`height · width`).
    pub fn input_dim(&self) -> usize {
        self.image_shape.0 * self.image_shape.1
    }

    /// Builds a dataset from decoded IDX parts, checking that they fit together: label counts equal
    /// image counts, train and test images have the same size, and there are at least two classes.
    pub fn from_idx(
        name: impl Into<String>,
        source: DataSource,
        train: (IdxImages, Vec<u8>),
        test: (IdxImages, Vec<u8>),
    ) -> Result<Self, DataError> {
        let name = name.into();
        let inconsistent = |what: String| DataError::Inconsistent { dataset: name.clone(), what };
        for (split, (images, labels)) in [("train", &train), ("test", &test)] {
            if images.count() != labels.len() {
                return Err(inconsistent(format!(
                    "{split} split has {} images but {} labels",
                    images.count(),
                    labels.len()
                )));
            }
        }
        let image_shape = (train.0.rows(), train.0.cols());
        if (test.0.rows(), test.0.cols()) != image_shape {
            return Err(inconsistent(format!(
                "train images are {}×{} but test images are {}×{}",
                image_shape.0,
                image_shape.1,
                test.0.rows(),
                test.0.cols()
            )));
        }
        let max_label = train.1.iter().chain(&test.1).copied().max().unwrap_or(0);
        let classes = usize::from(max_label) + 1;
        if classes < 2 {
            return Err(inconsistent("all labels are 0; a classification dataset needs at least 2 classes".into()));
        }
        let split = |(images, labels): (IdxImages, Vec<u8>)| Split {
            images: images.to_matrix(),
            labels: labels.into_iter().map(usize::from).collect(),
        };
        Ok(Self { name, source, train: split(train), test: split(test), classes, image_shape })
    }
}

/// The seed of the validation holdout taken by `bio train --validation N` ([`Split::stratified_holdout`]):
/// a fixed constant, unrelated to any training seed, so that every run with the same `N` on the same
/// data holds out the same images.
pub const VALIDATION_SEED: u64 = 0x7661_6c69_6461_7465; // "validate" in ASCII

/// A uniformly random permutation of `0..n`, deterministic per `seed` (Fisher–Yates with ChaCha8).
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..n).collect();
    shuffle(&mut indices, &mut ChaCha8Rng::seed_from_u64(seed));
    indices
}

/// In-place Fisher–Yates shuffle. Draws `u64`s so results do not depend on the platform's word size.
fn shuffle(values: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..values.len()).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        values.swap(i, j);
    }
}

impl Split {
    /// Pairs `images` (one per row) with `labels`; errors if their counts differ.
    pub fn new(images: Matrix, labels: Vec<usize>) -> Result<Self, DataError> {
        if images.rows() != labels.len() {
            return Err(DataError::Invalid {
                what: format!("split has {} images but {} labels", images.rows(), labels.len()),
            });
        }
        Ok(Self { images, labels })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split has no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Iterates over mini-batches of `batch_size` examples (the last one may be smaller).
    ///
    /// With `shuffle_seed = Some(seed)` the examples are visited in a random order that is the same
    /// for the same seed ([`shuffled_indices`]); with `None` in their stored order.
    ///
    /// # Panics
    ///
    /// If `batch_size` is 0.
    pub fn batches(&self, batch_size: usize, shuffle_seed: Option<u64>) -> Batches<'_> {
        assert!(batch_size > 0, "batch size must be at least 1");
        let order = match shuffle_seed {
            Some(seed) => shuffled_indices(self.len(), seed),
            None => (0..self.len()).collect(),
        };
        Batches { split: self, order, batch_size, next: 0 }
    }

    /// The examples at `indices`, in that order (repeats allowed).
    ///
    /// # Panics
    ///
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Split {
        Split { images: self.images.select_rows(indices), labels: indices.iter().map(|&i| self.labels[i]).collect() }
    }

    /// Only the examples whose label is in `classes`, in stored order; labels are unchanged.
    pub fn filter_classes(&self, classes: &[usize]) -> Split {
        let keep: Vec<usize> = (0..self.len()).filter(|&i| classes.contains(&self.labels[i])).collect();
        self.select(&keep)
    }

    /// The indices of the examples of each class: entry `c` lists the rows labelled `c`, in order.
    /// Its length is the largest label + 1 (absent classes get empty lists).
    pub fn class_indices(&self) -> Vec<Vec<usize>> {
        let classes = self.labels.iter().max().map_or(0, |&m| m + 1);
        let mut out = vec![Vec::new(); classes];
        for (i, &label) in self.labels.iter().enumerate() {
            out[label].push(i);
        }
        out
    }

    /// `per_class` randomly chosen examples of every class present, deterministic per `seed`, kept in
    /// stored order. Errors (naming the class) if a class has fewer than `per_class` examples.
    pub fn per_class_subset(&self, per_class: usize, seed: u64) -> Result<Split, DataError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut chosen = Vec::new();
        for (class, mut indices) in self.class_indices().into_iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            if indices.len() < per_class {
                return Err(DataError::NotEnoughExamples { class, available: indices.len(), requested: per_class });
            }
            shuffle(&mut indices, &mut rng);
            chosen.extend_from_slice(&indices[..per_class]);
        }
        chosen.sort_unstable();
        Ok(self.select(&chosen))
    }

    /// Splits off `n` examples for validation, stratified by class; returns `(rest, held_out)`.
    ///
    /// Each of the `C` classes present gives `⌊n/C⌋` or `⌈n/C⌉` examples: the `n mod C` extra ones
    /// come from the classes with the most examples, ties going to the lower label. A class gives the
    /// first examples of its own order shuffled by `seed` (ChaCha8, one stream per class label), so
    /// the choice depends only on the split's contents and `seed`, and a class's choice does not
    /// depend on which other classes are present. Both parts keep the stored order, and together they
    /// hold every example exactly once. `n = 0` gives the whole split and an empty one.
    ///
    /// Errors ([`DataError::Invalid`], its message starting `cannot hold out N of M examples`) when `n`
    /// is not less than the number of examples, or when a class would give all its examples (at least
    /// one of each class stays for training).
    pub fn stratified_holdout(&self, n: usize, seed: u64) -> Result<(Split, Split), DataError> {
        let available = self.len();
        if n == 0 {
            return Ok((self.clone(), self.select(&[])));
        }
        let fail = |reason: String| DataError::Invalid {
            what: format!("cannot hold out {n} of {available} examples: {reason}"),
        };
        if n >= available {
            return Err(fail("at least one example of each class must stay for training".into()));
        }
        let present: Vec<(usize, Vec<usize>)> =
            self.class_indices().into_iter().enumerate().filter(|(_, rows)| !rows.is_empty()).collect();
        let (base, extra) = (n / present.len(), n % present.len());
        let mut by_size: Vec<usize> = (0..present.len()).collect();
        by_size.sort_by_key(|&i| (std::cmp::Reverse(present[i].1.len()), present[i].0));
        let mut quota = vec![base; present.len()];
        for &i in &by_size[..extra] {
            quota[i] += 1;
        }
        let mut held = Vec::with_capacity(n);
        for ((class, mut rows), take) in present.into_iter().zip(quota) {
            if take >= rows.len() {
                return Err(fail(format!(
                    "class {class} has {} examples and would give {take} of them; at least one example of each \
                     class must stay for training",
                    rows.len()
                )));
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(class as u64);
            shuffle(&mut rows, &mut rng);
            held.extend_from_slice(&rows[..take]);
        }
        held.sort_unstable();
        let mut is_held = vec![false; available];
        for &i in &held {
            is_held[i] = true;
        }
        let rest: Vec<usize> = (0..available).filter(|&i| !is_held[i]).collect();
        Ok((self.select(&rest), self.select(&held)))
    }

    /// The first `n` examples (all of them if there are fewer), e.g. for a `--limit` option.
    pub fn take(&self, n: usize) -> Split {
        let indices: Vec<usize> = (0..n.min(self.len())).collect();
        self.select(&indices)
    }
}

/// Iterator over the mini-batches of a [`Split`]; see [`Split::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    split: &'a Split,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = self.next.saturating_add(self.batch_size).min(self.order.len());
        let indices = self.order[self.next..end].to_vec();
        self.next = end;
        let Split { images, labels } = self.split.select(&indices);
        Some(Batch { images, labels, indices })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A split whose row `i` has label `labels[i]` and holds `i` in its first column (to trace rows).
    fn traced(labels: &[usize]) -> Split {
        let images = Matrix::from_fn(labels.len(), 2, |i, j| if j == 0 { i as f32 } else { labels[i] as f32 });
        Split::new(images, labels.to_vec()).unwrap()
    }

    /// The original rows of a part of a [`traced`] split.
    fn rows(part: &Split) -> Vec<usize> {
        (0..part.len()).map(|i| part.images.row(i)[0] as usize).collect()
    }

    fn count(part: &Split, class: usize) -> usize {
        part.labels.iter().filter(|&&l| l == class).count()
    }

    #[test]
    fn stratified_holdout_is_a_disjoint_cover_in_stored_order() {
        let labels: Vec<usize> = (0..60).map(|i| (i * 7) % 10).collect();
        let split = traced(&labels);
        let (rest, held) = split.stratified_holdout(25, VALIDATION_SEED).unwrap();
        assert_eq!((rest.len(), held.len()), (35, 25));
        let (r, h) = (rows(&rest), rows(&held));
        assert!(r.windows(2).all(|w| w[0] < w[1]) && h.windows(2).all(|w| w[0] < w[1]), "stored order");
        let mut all: Vec<usize> = r.iter().chain(&h).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..60).collect::<Vec<_>>(), "every example exactly once");
        // Labels travel with their images.
        for part in [&rest, &held] {
            for i in 0..part.len() {
                assert_eq!(part.labels[i], labels[rows(part)[i]]);
            }
        }
    }

    #[test]
    fn stratified_holdout_counts_are_as_equal_as_possible() {
        // Balanced: 10 classes of 6, 25 held out → 5 classes give 3 (the lowest labels), 5 give 2.
        let split = traced(&(0..60).map(|i| i % 10).collect::<Vec<_>>());
        let (rest, held) = split.stratified_holdout(25, 1).unwrap();
        let per_class: Vec<usize> = (0..10).map(|c| count(&held, c)).collect();
        assert_eq!(per_class, [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
        assert!((0..10).all(|c| count(&rest, c) + per_class[c] == 6));
        // Unbalanced: sizes 5, 10, 7 and 8 held out → 2 each plus the extra 2 from the two largest.
        let mut labels = vec![0; 5];
        labels.extend([1; 10]);
        labels.extend([2; 7]);
        let (_, held) = traced(&labels).stratified_holdout(8, 1).unwrap();
        assert_eq!([0, 1, 2].map(|c| count(&held, c)), [2, 3, 3]);
        // Absent labels are not classes: labels 1 and 3 only, 3 held out → 2 of class 1 (tie → lower).
        let (_, held) = traced(&[1, 3, 1, 3, 1, 3]).stratified_holdout(3, 1).unwrap();
        assert_eq!([1, 3].map(|c| count(&held, c)), [2, 1]);
    }

    #[test]
    fn stratified_holdout_is_deterministic_per_seed_and_per_class() {
        let labels: Vec<usize> = (0..200).map(|i| (i * 3) % 4).collect();
        let split = traced(&labels);
        let a = split.stratified_holdout(40, 7).unwrap();
        assert_eq!(a, split.stratified_holdout(40, 7).unwrap());
        assert_ne!(rows(&a.1), rows(&split.stratified_holdout(40, 8).unwrap().1), "the seed matters");
        // A class's held-out examples do not depend on the other classes present (e.g. `--classes`).
        let only_2 = split.filter_classes(&[2]);
        let (_, held_2) = only_2.stratified_holdout(10, 7).unwrap();
        let in_full: Vec<usize> = rows(&a.1).into_iter().filter(|&r| labels[r] == 2).collect();
        assert_eq!(in_full.len(), 10);
        assert_eq!(in_full, rows(&held_2), "the same original rows");
    }

    #[test]
    fn stratified_holdout_refuses_what_would_empty_a_class() {
        let split = traced(&[0, 0, 0, 1, 1, 1, 1, 1]);
        let (rest, held) = split.stratified_holdout(0, 1).unwrap();
        assert_eq!((rest, held.len(), held.images.cols()), (split.clone(), 0, 2));
        for n in [8, 9] {
            let msg = split.stratified_holdout(n, 1).unwrap_err().to_string();
            assert!(msg.contains(&format!("cannot hold out {n} of 8 examples")), "{msg}");
        }
        // 6 of 8: class 0 (3 examples) would give all 3.
        let err = split.stratified_holdout(6, 1).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Invalid { .. }), "{msg}");
        assert!(msg.contains("cannot hold out 6 of 8 examples"), "{msg}");
        assert!(msg.contains("class 0 has 3 examples and would give 3"), "{msg}");
        assert!(!msg.contains('\n'));
        // 5 of 8 leaves one of class 0.
        let (rest, _) = split.stratified_holdout(5, 1).unwrap();
        assert_eq!((count(&rest, 0), count(&rest, 1)), (1, 2));
    }
}
