//! Clean accuracy and the confusion matrix.

use bio_core::{Backend, Classifier, Matrix};
use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// `counts[true][predicted]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Number of classes.
    pub classes: usize,
    /// `counts[t][p]`: samples of true class `t` predicted as `p`.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// An empty matrix.
    pub fn new(classes: usize) -> Self {
        Self { classes, counts: vec![vec![0; classes]; classes] }
    }

    /// Adds one prediction.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    /// Correct predictions (the diagonal).
    pub fn correct(&self) -> usize {
        (0..self.classes).map(|c| self.counts[c][c]).sum()
    }

    /// All predictions.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Recall of each class (`None` for a class with no samples).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.counts
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: usize = row.iter().sum();
                (n > 0).then(|| row[c] as f64 / n as f64)
            })
            .collect()
    }
}

/// Clean accuracy of a model on a labelled set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Fraction correct.
    pub accuracy: f64,
    /// Number correct.
    pub correct: usize,
    /// Number of samples.
    pub total: usize,
    /// The confusion matrix.
    pub confusion: ConfusionMatrix,
}

/// Calls `f(first_row, images, labels)` for consecutive batches of at most `batch` rows.
pub fn for_each_batch<E>(
    images: &Matrix,
    labels: &[usize],
    batch: usize,
    mut f: impl FnMut(usize, &Matrix, &[usize]) -> Result<(), E>,
) -> Result<(), E> {
    let batch = batch.max(1);
    let mut start = 0;
    while start < images.rows() {
        let end = (start + batch).min(images.rows());
        let rows: Vec<usize> = (start..end).collect();
        f(start, &images.select_rows(&rows), &labels[start..end])?;
        start = end;
    }
    Ok(())
}

/// Checks that `images` fit the model and that there is one label per image, each a known class.
pub fn check_inputs<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    labels: &[usize],
) -> Result<(), EvalError> {
    if images.cols() != model.input_dim() {
        return Err(EvalError::Shape(format!(
            "images have {} pixels but the model expects {}",
            images.cols(),
            model.input_dim()
        )));
    }
    if images.rows() != labels.len() {
        return Err(EvalError::Shape(format!("{} images but {} labels", images.rows(), labels.len())));
    }
    if let Some(l) = labels.iter().find(|&&l| l >= model.classes()) {
        return Err(EvalError::Shape(format!("label {l} but the model has {} classes", model.classes())));
    }
    Ok(())
}

/// Accuracy and confusion matrix of `model` on `(images, labels)`, in batches of `batch`.
pub fn evaluate<B: Backend, M: Classifier<B>>(
    model: &M,
    images: &Matrix,
    labels: &[usize],
    batch: usize,
) -> Result<Evaluation, EvalError> {
    check_inputs(model, images, labels)?;
    let b = model.backend();
    let mut confusion = ConfusionMatrix::new(model.classes());
    for_each_batch(images, labels, batch, |_, x, y| {
        for (t, p) in y.iter().zip(model.predict(&b.upload(x))) {
            confusion.add(*t, p);
        }
        Ok::<_, EvalError>(())
    })?;
    let (correct, total) = (confusion.correct(), confusion.total());
    Ok(Evaluation { accuracy: correct as f64 / total.max(1) as f64, correct, total, confusion })
}
