//! The images a session trains, validates and tests on: class restriction, the validation hold-out,
//! and a saved model's test set.

use std::path::Path;

use anyhow::{Context, Result, bail};
use bio_data::dataset::VALIDATION_SEED;
use bio_data::{DataError, Dataset, ModelFile, Split};

/// The splits of one training session.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Training images (restricted by `classes`, without the validation images).
    pub train: Split,
    /// Validation images held out of the training images (`validation: N`).
    pub validation: Option<Split>,
    /// Test images (restricted by `classes`).
    pub test: Split,
    /// Classes trained on.
    pub classes: Vec<usize>,
}

impl Splits {
    /// Restricts `data` to `classes` (all when `None`) and holds out `validation` training images.
    pub fn new(data: &Dataset, classes: Option<&str>, validation: usize) -> Result<Splits> {
        let (train, test, chosen) = restrict(data, classes)?;
        if chosen.len() < 2 {
            crate::invalid!("classes", "a classifier needs at least 2 classes, got {chosen:?}");
        }
        let (train, validation) = hold_out(train, validation, classes.is_some())?;
        Ok(Splits { train, validation, test, classes: chosen })
    }
}

/// Holds out `n` class-stratified images of `train` (already restricted by `classes`) with the fixed
/// [`VALIDATION_SEED`], so that every run with the same `n` and data holds out the same images whatever
/// its seed. Returns the rest and the held-out images (`None` when `n` is 0).
pub fn hold_out(train: Split, n: usize, classes_flag: bool) -> Result<(Split, Option<Split>)> {
    if n == 0 {
        return Ok((train, None));
    }
    match train.stratified_holdout(n, VALIDATION_SEED) {
        Ok((rest, held)) => Ok((rest, Some(held))),
        Err(DataError::Invalid { what }) => {
            let of = if classes_flag { " (the training images of the classes chosen by --classes)" } else { "" };
            crate::invalid!("validation", "{what}{of}")
        }
        Err(e) => Err(e.into()),
    }
}

/// Restricts both splits to `classes` (all when `None`).
pub fn restrict(data: &Dataset, classes: Option<&str>) -> Result<(Split, Split, Vec<usize>)> {
    match classes {
        None => Ok((data.train.clone(), data.test.clone(), (0..data.classes).collect())),
        Some(spec) => {
            let classes = bio_eval::parse_classes(spec).context("--classes")?;
            if let Some(c) = classes.iter().find(|&&c| c >= data.classes) {
                crate::invalid!("classes", "class {c} does not exist ({} classes)", data.classes);
            }
            Ok((data.train.filter_classes(&classes), data.test.filter_classes(&classes), classes))
        }
    }
}

/// The dataset a model trained from in-memory arrays (Python's `Trainer.fit`) records: there is no
/// test set to reload.
pub const ARRAYS_DATASET: &str = "numpy";

/// The test split of the model's dataset, restricted to the classes it was trained on, first `limit` images.
pub fn model_test_set(file: &ModelFile, data_dir: Option<&Path>, limit: Option<usize>) -> Result<(Dataset, Split)> {
    if file.dataset == ARRAYS_DATASET {
        bail!(
            "the model was trained from arrays (dataset `{ARRAYS_DATASET}`), so its test images are not known: evaluate \
             it on a dataset of your choice with `bio eval accuracy --dataset NAME|DIR` (e.g. --dataset fashion-mnist), \
             or from Python"
        );
    }
    test_set_for(file, &file.dataset, data_dir, limit)
}

/// Like [`model_test_set`] on another dataset `spec` (same classes restriction).
pub fn test_set_for(
    file: &ModelFile,
    spec: &str,
    data_dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<(Dataset, Split)> {
    if limit == Some(0) {
        crate::invalid!("limit", "must be ≥ 1");
    }
    let data = bio_data::load(spec, data_dir)?;
    let all = file.trained_classes.len() == data.classes;
    let classes = (!all).then(|| file.trained_classes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","));
    let (_, mut test, _) = restrict(&data, classes.as_deref())?;
    if let Some(n) = limit {
        test = test.take(n);
    }
    if test.is_empty() {
        bail!("the test set of {} is empty", data.name);
    }
    Ok((data, test))
}
