//! Python bindings of biorule: the `biorule._biorule` extension module, wrapped by the `biorule`
//! package (`python/biorule`). A front end like the `bio` command: it converts NumPy arrays and
//! keyword arguments into the library's types, drives `bio_run`, `bio_data` and `bio_eval`, and
//! converts the results back; the work itself stays in those crates.
//!
//! The GIL is released while training, predicting and attacking. Library errors become Python
//! exceptions with the CLI's one-line messages (see `src/errors.rs`); a panic (a bug) becomes a
//! `RuntimeError`, never a `PanicException`.

mod arrays;
mod convert;
mod errors;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use bio_core::{Backend, Classifier, Matrix, SavedModel};
use bio_data::{DataSource, Dataset, ModelFile, Split, model_dir};
use bio_eval::{AttackKind, AttackParams};
use bio_run::{BackendChoice, EVAL_BATCH, Event, Outcome, Resolved, Session, SessionSpec, TrainMetrics, on_backend};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use serde_json::Value;

use crate::arrays::{Images, images, images_to_py, labels, labels_to_py, matrix_to_py};
use crate::convert::{py_to_json, to_py_object};
use crate::errors::{DivergedError, IntoPy, value_error};

/// Runs `work`, turning a panic (a bug in biorule) into an error instead of letting it unwind into
/// Python as a `PanicException`.
fn guarded<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(anyhow!("internal error in biorule (please report it): {what}"))
    })
}

/// `with_network!(py, model, |b, net| body)`: loads `model` (a [`Model`]) onto its backend, binding the
/// backend to `b` and the network to `net`, and evaluates `body` (a `Result`) with the GIL released
/// and a panic turned into an error; the result becomes a `PyResult`. The one path every method
/// that runs a network takes.
macro_rules! with_network {
    ($py:expr, $model:expr, |$b:ident, $net:ident| $body:expr) => {{
        let model: &Model = $model;
        $py.detach(|| {
            guarded(|| {
                on_backend!(&model.backend, |$b| {
                    let $net = model.file.model.load($b)?;
                    $body
                })
            })
        })
        .py_err()
    }};
}

/// A backend name (`cpu`, `cuda`, `auto`) parsed the way `config.json` spells it.
fn backend_choice(name: &str) -> PyResult<BackendChoice> {
    serde_json::from_value(Value::String(name.to_string()))
        .map_err(|_| value_error(format!("invalid value for `backend`: expected cpu, cuda or auto, got {name:?}")))
}

fn resolve(choice: BackendChoice) -> PyResult<Resolved> {
    // The backend's advice names the CLI flag; from Python it is the `backend` argument.
    bio_run::resolve(choice)
        .map(|(backend, _note)| backend)
        .map_err(|e| anyhow!("{}", bio_run::one_line(&e).replace("--backend cpu", "backend=\"cpu\"")))
        .py_err()
}

/// `biorule.datasets.load`: a dataset's `(x_train, y_train, x_test, y_test)`.
#[pyfunction]
#[pyo3(signature = (name, data_dir=None))]
fn load_dataset<'py>(py: Python<'py>, name: &str, data_dir: Option<PathBuf>) -> PyResult<Bound<'py, PyTuple>> {
    let data = py.detach(|| guarded(|| Ok(bio_data::load(name, data_dir.as_deref())?))).py_err()?;
    let image = |m: &Matrix| -> PyResult<Bound<'py, PyAny>> {
        let flat = matrix_to_py(py, m)?;
        Ok(flat.reshape([m.rows(), data.image_shape.0, data.image_shape.1])?.into_any())
    };
    PyTuple::new(
        py,
        [
            image(&data.train.images)?,
            labels_to_py(py, &data.train.labels).into_any(),
            image(&data.test.images)?,
            labels_to_py(py, &data.test.labels).into_any(),
        ],
    )
}

/// The options `Trainer(**options)` accepts: every field of `RuleOptions` except those with their own
/// argument (`hidden`, `seed` in the constructor; `epochs`, `batch` in `fit`).
fn rule_option_names() -> Vec<String> {
    let defaults = serde_json::to_value(bio_run::RuleOptions::default()).unwrap_or(Value::Null);
    let own = ["hidden", "seed", "epochs", "batch"];
    let mut names: Vec<String> = defaults
        .as_object()
        .map_or_else(Vec::new, |o| o.keys().filter(|k| !own.contains(&k.as_str())).cloned().collect());
    // The settings a rule declares (`kh-p`) as Python spells keyword arguments (`kh_p`).
    for rule in bio_core::rules::rules() {
        names.extend(rule.options.iter().map(|o| o.flag.replace('-', "_")));
    }
    names
}

/// The key of option `name` in `config.json`: a declared rule setting by its flag (`kh_p` → `kh-p`).
fn option_key(name: &str) -> String {
    let flag = name.replace('_', "-");
    let declared = bio_core::rules::rules().iter().any(|r| r.option(&flag).is_some());
    if declared { flag } else { name.to_string() }
}

/// Trains a network with any registered rule (`bio`, `bp`, `kh`, `softhebb`) on NumPy arrays.
#[pyclass(module = "biorule._biorule", frozen)]
struct Trainer {
    rule: String,
    hidden: Vec<usize>,
    seed: u64,
    backend: BackendChoice,
    options: BTreeMap<String, Value>,
}

impl Trainer {
    /// The session spec for one `fit`: defaults, then this trainer's settings, then `fit`'s.
    fn spec(
        &self,
        epochs: usize,
        batch: usize,
        validation: usize,
        dataset: &str,
        out: Option<&Path>,
    ) -> Result<SessionSpec> {
        let mut json = serde_json::to_value(SessionSpec::default())?;
        json["rule"] = Value::String(self.rule.clone());
        json["data"]["dataset"] = Value::String(dataset.to_string());
        json["validation"] = Value::from(validation);
        json["out"] = serde_json::to_value(out)?;
        let args = &mut json["rule_args"];
        args["hidden"] = serde_json::to_value(&self.hidden)?;
        args["seed"] = Value::from(self.seed);
        args["epochs"] = Value::from(epochs);
        args["batch"] = Value::from(batch);
        // Each option alone first, so that a bad one is named in the error.
        for (name, value) in &self.options {
            let mut one = json.clone();
            one["rule_args"][option_key(name)] = value.clone();
            if let Err(e) = serde_json::from_value::<SessionSpec>(one) {
                anyhow::bail!("invalid value for `{name}`: {value} ({e})");
            }
        }
        for (name, value) in &self.options {
            json["rule_args"][option_key(name)] = value.clone();
        }
        let mut spec: SessionSpec = serde_json::from_value(json)?;
        spec.backend = self.backend;
        spec.check()?;
        Ok(spec)
    }
}

#[pymethods]
impl Trainer {
    #[new]
    #[pyo3(signature = (rule="bio", hidden=None, seed=0, backend="cpu", **options))]
    fn new(
        rule: &str,
        hidden: Option<Vec<usize>>,
        seed: u64,
        backend: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        if let Err(e) = bio_core::rules::find(rule) {
            return Err(value_error(format!("invalid value for `rule`: {e}")));
        }
        let known = rule_option_names();
        let mut parsed = BTreeMap::new();
        let mut unknown = Vec::new();
        for (key, value) in options.into_iter().flat_map(|d| d.iter()) {
            let name: String = key.extract()?;
            if known.contains(&name) {
                parsed.insert(name.clone(), py_to_json(&value, &name)?);
            } else {
                unknown.push(name);
            }
        }
        if !unknown.is_empty() {
            let hint = if unknown.iter().any(|n| n == "epochs" || n == "batch") {
                " (epochs and batch are arguments of fit)"
            } else {
                ""
            };
            // A likely misspelling gets a suggestion; the whole list only when none is close.
            let suggestions: Vec<String> = unknown
                .iter()
                .filter_map(|n| {
                    bio_run::names::did_you_mean(n, known.iter().map(String::as_str)).map(|k| format!("`{k}`"))
                })
                .collect();
            let help = if suggestions.is_empty() {
                format!("; known options: {}", known.join(", "))
            } else {
                format!("; did you mean {}?", suggestions.join(", "))
            };
            return Err(value_error(format!(
                "unknown option{} {}{hint}{help}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
            )));
        }
        let trainer = Trainer {
            rule: rule.to_string(),
            hidden: hidden.unwrap_or_else(|| vec![2000]),
            seed,
            backend: backend_choice(backend)?,
            options: parsed,
        };
        // Refuse bad settings now rather than at `fit` (epochs and batch are checked there).
        trainer.spec(1, 100, 0, "numpy", None).py_err()?;
        Ok(trainer)
    }

    /// Trains a new network on `x` (float images in [0, 1], `(n, pixels)` or `(n, h, w)`) and `y`
    /// (integer labels) and returns it as a `Model`. See `biorule/__init__.pyi` for every argument.
    #[pyo3(signature = (x, y, epochs=None, batch=100, validation=0, out=None, callback=None, x_test=None, y_test=None, dataset=None, force=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        epochs: Option<usize>,
        batch: usize,
        validation: usize,
        out: Option<PathBuf>,
        callback: Option<Py<PyAny>>,
        x_test: Option<&Bound<'_, PyAny>>,
        y_test: Option<&Bound<'_, PyAny>>,
        dataset: Option<String>,
        force: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Model> {
        let rule_name = bio_run::RuleName::new(self.rule.clone());
        let epochs = epochs.unwrap_or(rule_name.default_epochs());
        let dataset = dataset.unwrap_or_else(|| "numpy".into());
        let mut spec = self.spec(epochs, batch, validation, &dataset, out.as_deref()).py_err()?;
        spec.force = force;
        let train = read_split(x, y, "x", "y")?;
        let test = match (x_test, y_test) {
            (Some(xt), Some(yt)) => Some(read_split(xt, yt, "x_test", "y_test")?),
            (None, None) => None,
            _ => return Err(value_error("pass both `x_test` and `y_test`, or neither")),
        };
        if let Some((t, _)) = &test
            && t.shape != train.0.shape
        {
            return Err(value_error(format!(
                "`x_test` images are {}×{}, `x` images are {}×{}",
                t.shape.0, t.shape.1, train.0.shape.0, train.0.shape.1
            )));
        }
        let data = Arc::new(numpy_dataset(&dataset, train, test)?);
        let backend = resolve(spec.backend)?;
        let session = Session::builder(spec).data(data).backend(backend.clone()).build().py_err()?;
        let (metrics, model) = run_session(py, session, callback, progress)?;
        // The same file the session wrote into `out` (if any): every class of the arrays trained.
        let file = ModelFile {
            trained_classes: (0..saved_classes(&model)).collect(),
            model,
            dataset,
            epochs: metrics.epochs,
            seed: metrics.seed,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        Ok(Model { file, backend, metrics: Some(metrics) })
    }

    fn __repr__(&self) -> String {
        let options: Vec<String> = self.options.iter().map(|(k, v)| format!(", {k}={v}")).collect();
        format!("Trainer(rule={:?}, hidden={:?}, seed={}{})", self.rule, self.hidden, self.seed, options.concat())
    }
}

/// Runs `session` with the GIL released. After each batch the observer takes the GIL back to check
/// for signals (Ctrl-C) and to drive the progress display (`progress`: False/None, True, or a
/// tqdm-like class; see `biorule/_progress.py`), and after each epoch to call `callback`; the first
/// Python exception any of them raises stops the session after that batch (its checkpoint written,
/// when it has a directory) and is re-raised once `run` has returned.
fn run_session(
    py: Python<'_>,
    session: Session,
    callback: Option<Py<PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(TrainMetrics, SavedModel)> {
    if let Some(cb) = &callback
        && !cb.bind(py).is_callable()
    {
        return Err(value_error("`callback` must be callable (it is called with each epoch's report)"));
    }
    // Checked now, so that a bad `progress` fails before any training.
    let progress_module = py.import("biorule._progress")?;
    let progress_kind = progress_module.call_method1("check", (progress,))?.unbind();
    let start_display = progress_module.getattr("start")?.unbind();
    let epochs = session.spec().epochs();
    let stop = session.stop_flag();
    let mut raised: Option<PyErr> = None;
    let mut display: Option<Py<PyAny>> = None;
    let outcome = py.detach(|| {
        let mut observer = |event: &Event<'_>| {
            if raised.is_some() {
                return;
            }
            Python::attach(|py| {
                let result = py.check_signals().and_then(|()| match event {
                    Event::Started { total_batches, done_batches, .. } => {
                        let shown = start_display.call1(py, (&progress_kind, total_batches, done_batches, epochs))?;
                        display = (!shown.is_none(py)).then_some(shown);
                        Ok(())
                    }
                    Event::Batch { epoch, done_batches, loss, accuracy } => match &display {
                        Some(d) => d.call_method1(py, "batch", (epoch, done_batches, loss, accuracy)).map(drop),
                        None => Ok(()),
                    },
                    Event::EpochEnded { log, epochs } => {
                        let report = to_py_object(py, log)?;
                        report.cast::<PyDict>()?.set_item("epochs", *epochs)?;
                        if let Some(d) = &display {
                            d.call_method1(py, "epoch", (&report,))?;
                        }
                        match &callback {
                            Some(cb) => cb.call1(py, (report,)).map(drop),
                            None => Ok(()),
                        }
                    }
                    _ => Ok(()),
                });
                if let Err(e) = result {
                    raised = Some(e);
                    stop.stop();
                }
            });
        };
        guarded(|| session.run(&mut observer))
    });
    if let Some(d) = display {
        // Closed whatever happened, so a terminal bar does not stay half-drawn; an error while
        // closing only surfaces when nothing else went wrong.
        let closed = d.call_method0(py, "close");
        if raised.is_none()
            && let Err(e) = closed
        {
            raised = Some(e);
        }
    }
    if let Some(e) = raised {
        return Err(e);
    }
    match outcome.py_err()? {
        Outcome::Finished(trained) => Ok((trained.metrics, trained.model)),
        // Only `raised` sets the stop flag, and it was handled above.
        Outcome::Interrupted { .. } => Err(pyo3::exceptions::PyRuntimeError::new_err("training was interrupted")),
    }
}

/// `biorule.resume(dir)`: continues the run saved in `dir` (stopped by Ctrl-C, a raising callback, or a
/// killed `bio train`) to its end, as `bio train --resume DIR` does, and returns the model.
#[pyfunction]
#[pyo3(signature = (dir, callback=None, backend=None, progress=None))]
fn resume(
    py: Python<'_>,
    dir: PathBuf,
    callback: Option<Py<PyAny>>,
    backend: Option<&str>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Model> {
    let mut saved = py.detach(|| guarded(|| bio_run::Resumable::read(&dir))).py_err()?;
    if let Some(name) = backend {
        saved.spec.backend = backend_choice(name)?;
    }
    let session = py.detach(|| guarded(|| Session::resuming(saved).build())).py_err()?;
    let backend = session.backend().clone();
    let (metrics, _) = run_session(py, session, callback, progress)?;
    // The directory's model file, as the session wrote it at the last epoch.
    let file = py.detach(|| guarded(|| Ok(bio_data::load_model(&dir)?))).py_err()?;
    Ok(Model { file, backend, metrics: Some(metrics) })
}

/// Images and labels read from NumPy as one split.
fn read_split(
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    x_name: &str,
    y_name: &str,
) -> PyResult<(Images, Vec<usize>)> {
    let images = images(x, x_name, None)?;
    let labels = labels(y, y_name, images.matrix.rows(), None)?;
    Ok((images, labels))
}

/// A dataset from NumPy splits; without a test split, the training split doubles as it.
fn numpy_dataset(name: &str, train: (Images, Vec<usize>), test: Option<(Images, Vec<usize>)>) -> PyResult<Dataset> {
    let image_shape = train.0.shape;
    let classes = train.1.iter().chain(test.iter().flat_map(|t| t.1.iter())).max().map_or(0, |&m| m + 1);
    if classes < 2 {
        return Err(value_error("the labels hold a single class; a classifier needs at least 2"));
    }
    let train = Split::new(train.0.matrix, train.1).py_err()?;
    let test = match test {
        Some((images, labels)) => Split::new(images.matrix, labels).py_err()?,
        None => train.clone(),
    };
    Ok(Dataset {
        name: name.to_string(),
        source: DataSource::Directory(PathBuf::from("<NumPy arrays>")),
        train,
        test,
        classes,
        image_shape,
    })
}

fn saved_classes(model: &SavedModel) -> usize {
    model.classes
}

fn saved_input_dim(model: &SavedModel) -> usize {
    model.input_dim
}

/// What a forward pass returns.
#[derive(Clone, Copy)]
enum Output {
    Logits,
    Probabilities,
    Hidden(usize),
}

/// `what` for every row of `x`, in batches of [`EVAL_BATCH`].
fn forward<B: Backend>(b: &B, model: &impl Classifier<B>, x: &Matrix, what: Output) -> Result<Matrix> {
    let mut values = Vec::new();
    let mut cols = 0;
    for start in (0..x.rows()).step_by(EVAL_BATCH) {
        let rows: Vec<usize> = (start..(start + EVAL_BATCH).min(x.rows())).collect();
        let xb = b.upload(&x.select_rows(&rows));
        let out = match what {
            Output::Logits => model.logits(&xb),
            Output::Probabilities => b.softmax_rows(&model.logits(&xb)),
            Output::Hidden(layer) => model.hidden_activity(&xb).swap_remove(layer),
        };
        let host = b.download(&out);
        cols = host.cols();
        values.extend_from_slice(host.as_slice());
    }
    Ok(Matrix::new(x.rows(), cols, values)?)
}

fn argmax_rows(m: &Matrix) -> Vec<usize> {
    (0..m.rows())
        .map(|i| {
            m.row(i)
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (j, &v)| if v > best.1 { (j, v) } else { best })
                .0
        })
        .collect()
}

/// A trained network (either rule), held in backend-free form and run on the backend it was
/// trained or loaded with.
#[pyclass(module = "biorule._biorule", frozen)]
struct Model {
    file: ModelFile,
    backend: Resolved,
    metrics: Option<TrainMetrics>,
}

impl Model {
    fn run(&self, py: Python<'_>, x: &Bound<'_, PyAny>, what: Output) -> PyResult<Matrix> {
        let images = images(x, "x", Some(self.input_dim()))?;
        with_network!(py, self, |b, net| forward(b, &net, &images.matrix, what))
    }
}

#[pymethods]
impl Model {
    /// The rule that trained it (`"bio"`, `"bp"`, …).
    #[getter]
    fn rule(&self) -> &str {
        self.file.model.rule()
    }

    /// Hidden layer widths.
    #[getter]
    fn hidden_sizes(&self) -> Vec<usize> {
        self.file.model.hidden().to_vec()
    }

    /// Pixels per image.
    #[getter]
    fn input_dim(&self) -> usize {
        saved_input_dim(&self.file.model)
    }

    /// Number of classes.
    #[getter]
    fn classes(&self) -> usize {
        saved_classes(&self.file.model)
    }

    /// Name of the dataset recorded in the model file.
    #[getter]
    fn dataset(&self) -> &str {
        &self.file.dataset
    }

    /// What training measured (`metrics.json`), or None for a loaded model without one.
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.metrics.as_ref().map(|m| to_py_object(py, m)).transpose()
    }

    /// Predicted class of each image, int64 `(n,)`.
    fn predict<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let logits = self.run(py, x, Output::Logits)?;
        Ok(labels_to_py(py, &argmax_rows(&logits)).into_any())
    }

    /// Softmax class probabilities, float32 `(n, classes)`.
    fn predict_proba<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let p = self.run(py, x, Output::Probabilities)?;
        matrix_to_py(py, &p)
    }

    /// Class scores before the softmax, float32 `(n, classes)`.
    fn logits<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let z = self.run(py, x, Output::Logits)?;
        matrix_to_py(py, &z)
    }

    /// Activity of hidden layer `layer` (0 = first), float32 `(n, width)`.
    #[pyo3(signature = (x, layer=0))]
    fn hidden<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>, layer: i64) -> PyResult<Bound<'py, PyArray2<f32>>> {
        // A signed index, so that -1 is this ValueError rather than an OverflowError.
        let layers = self.file.model.hidden().len();
        let Some(layer) = usize::try_from(layer).ok().filter(|&l| l < layers) else {
            return Err(value_error(format!(
                "invalid value for `layer`: the model has {layers} hidden layers (0 to {}), got {layer}",
                layers.saturating_sub(1)
            )));
        };
        let h = self.run(py, x, Output::Hidden(layer))?;
        matrix_to_py(py, &h)
    }

    /// Per-sample cross-entropy losses `(n,)` and their exact gradient with respect to the images,
    /// shaped like `x` (what the attacks follow), for labels `y`.
    fn input_gradient<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let images = images(x, "x", Some(self.input_dim()))?;
        let y = labels(y, "y", images.matrix.rows(), Some(self.classes()))?;
        let (losses, gradient) = with_network!(py, self, |b, net| input_gradient_on(b, &net, &images.matrix, &y))?;
        PyTuple::new(py, [PyArray1::from_vec(py, losses).into_any(), images_to_py(py, &gradient, x)?])
    }

    /// The documented forward pass of this model, in words (the `forward` entry of `bio export`'s
    /// metadata); empty for a rule that has none.
    #[getter]
    fn forward_text(&self) -> String {
        bio_eval::model_metadata(&self.file.model).remove(bio_eval::export::FORWARD_KEY).unwrap_or_default()
    }

    /// The forward pass as ops over `weights()` (`bio_eval::forward_pass`: `{"rule", "ops"}`), which
    /// `to_torch` and `biorule._forward` interpret.
    fn _forward_pass<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let constants = bio_eval::forward_pass(&self.file.model).py_err()?;
        to_py_object(py, &constants)
    }

    /// A `torch.nn.Module` computing this model's logits with its rule's forward pass (its ops,
    /// interpreted by `biorule/_forward.py`); `ImportError` when torch is not installed.
    fn to_torch<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("biorule._torch")?.call_method1("to_torch", (slf,))
    }

    /// Every parameter (weights, biases, masks, state) as float32 arrays, by name.
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, m) in &self.file.model.params().tensors {
            dict.set_item(name, matrix_to_py(py, m)?)?;
        }
        Ok(dict)
    }

    /// Writes the model into directory `dir` (created if missing) as `model.ckpt`, the file
    /// `bio eval … --model DIR` reads. A directory that already holds a run is refused unless
    /// `overwrite`, which removes that run's files first (so no old result stays beside the model).
    #[pyo3(signature = (dir, overwrite=false))]
    fn save(&self, py: Python<'_>, dir: PathBuf, overwrite: bool) -> PyResult<()> {
        py.detach(|| {
            guarded(|| {
                if let Some(found) = bio_run::files::RUN_FILES.iter().find(|f| dir.join(f).exists()) {
                    if !overwrite {
                        anyhow::bail!(
                            "invalid value for `dir`: {} already holds a run ({found}); pass overwrite=True to replace it",
                            dir.display()
                        );
                    }
                    for stale in bio_run::files::RUN_FILES.map(|f| dir.join(f)).iter().filter(|p| p.exists()) {
                        std::fs::remove_file(stale).with_context(|| format!("removing {}", stale.display()))?;
                    }
                }
                bio_data::ensure_output_dir(&dir)?;
                Ok(model_dir::save_model(&dir, &self.file)?)
            })
        })
        .py_err()
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(rule={:?}, input_dim={}, hidden={:?}, classes={}, backend={:?})",
            self.rule(),
            self.input_dim(),
            self.hidden_sizes(),
            self.classes(),
            self.backend.name()
        )
    }
}

/// `biorule.load(path)`: a model directory (or `model.ckpt` file) written by `bio train`,
/// `Trainer.fit(out=…)` or `Model.save`.
#[pyfunction]
#[pyo3(signature = (path, backend="cpu"))]
fn load(py: Python<'_>, path: PathBuf, backend: &str) -> PyResult<Model> {
    let backend = resolve(backend_choice(backend)?)?;
    py.detach(|| {
        guarded(|| {
            let file = bio_data::load_model(&path)?;
            // Uploading checks every tensor's shape and finiteness now, not at the first prediction.
            on_backend!(&backend, |b| file.model.load(b).map(drop))
                .with_context(|| format!("loading {}", path.display()))?;
            let metrics = if path.is_dir() { bio_run::read_saved(&path, model_dir::METRICS_FILE)? } else { None };
            Ok(Model { file, backend: backend.clone(), metrics })
        })
    })
    .py_err()
}

fn attack_on<B: Backend>(
    b: &B,
    model: &impl Classifier<B>,
    attack: &bio_eval::Attack,
    x: &Matrix,
    y: &[usize],
    seed: u64,
) -> Result<(Matrix, f64)> {
    let adversarial = bio_eval::perturb(model, attack, x, y, seed)?;
    let clean = argmax_rows(&forward(b, model, x, Output::Logits)?);
    let attacked = argmax_rows(&forward(b, model, &adversarial, Output::Logits)?);
    // Robust accuracy as `bio eval robustness` counts it: right on both the clean and the attacked image.
    let robust = (0..y.len()).filter(|&i| clean[i] == y[i] && attacked[i] == y[i]).count();
    Ok((adversarial, robust as f64 / y.len() as f64))
}

/// `biorule.attack`: adversarial images in the L∞ ball of radius `eps` around `x` (and in [0, 1]),
/// and the robust accuracy on them.
#[pyfunction]
#[pyo3(signature = (model, x, y, attack="pgd", eps=0.1, steps=40, seed=0, queries=None))]
#[allow(clippy::too_many_arguments)]
fn attack<'py>(
    py: Python<'py>,
    model: &Model,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    attack: &str,
    eps: f32,
    steps: usize,
    seed: u64,
    queries: Option<usize>,
) -> PyResult<Bound<'py, PyTuple>> {
    let kind = match attack {
        "pgd" => AttackKind::Pgd,
        "fgsm" => AttackKind::Fgsm,
        "square" => AttackKind::Square,
        other => {
            return Err(value_error(format!(
                "invalid value for `attack`: expected pgd, fgsm or square, got {other:?}"
            )));
        }
    };
    let defaults = AttackParams::default();
    let queries = queries.unwrap_or(defaults.queries);
    let checked = AttackParams { kind, eps, steps, queries, ..defaults }.check().py_err()?;
    let images = images(x, "x", Some(model.input_dim()))?;
    let y = labels(y, "y", images.matrix.rows(), Some(model.classes()))?;
    let (adversarial, robust) =
        with_network!(py, model, |b, net| attack_on(b, &net, &checked, &images.matrix, &y, seed))?;
    PyTuple::new(py, [images_to_py(py, &adversarial, x)?, robust.into_pyobject(py)?.into_any()])
}

/// `biorule.metrics`: the biological metrics of `bio eval metrics` (per layer: activity sparseness,
/// dead units, weight distribution, Dale index, …) measured on the images `x`.
#[pyfunction]
fn metrics<'py>(py: Python<'py>, model: &Model, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let images = images(x, "x", Some(model.input_dim()))?;
    let report =
        with_network!(py, model, |_b, net| Ok(bio_eval::biological_report(&net, &images.matrix, EVAL_BATCH)?))?;
    to_py_object(py, &report)
}

fn input_gradient_on<B: Backend>(
    b: &B,
    model: &impl Classifier<B>,
    x: &Matrix,
    y: &[usize],
) -> Result<(Vec<f32>, Matrix)> {
    let (mut losses, mut gradient) = (Vec::with_capacity(y.len()), Vec::with_capacity(x.len()));
    for start in (0..x.rows()).step_by(EVAL_BATCH) {
        let rows: Vec<usize> = (start..(start + EVAL_BATCH).min(x.rows())).collect();
        let (l, g) = model.loss_and_input_gradient(&b.upload(&x.select_rows(&rows)), &y[start..start + rows.len()]);
        losses.extend(l);
        gradient.extend_from_slice(b.download(&g).as_slice());
    }
    Ok((losses, Matrix::new(x.rows(), x.cols(), gradient)?))
}

/// `biorule.fewshot`: the episodic few-shot protocol of `bio eval fewshot` on the images `x, y`:
/// N-way episodes drawn from the `novel` classes (default: those the model was not trained on),
/// scored with cosine nearest class mean and a linear probe on raw pixels, on the hidden layer's
/// code and on its drive before competition. One dict per features × classifier × shots.
#[pyfunction]
#[pyo3(signature = (model, x, y, novel=None, ways=5, shots=vec![1, 5], queries=15, episodes=600, seed=0, layer=None))]
#[pyo3(
    text_signature = "(model, x, y, novel=None, ways=5, shots=[1, 5], queries=15, episodes=600, seed=0, layer=None)"
)]
#[allow(clippy::too_many_arguments)]
fn fewshot<'py>(
    py: Python<'py>,
    model: &Model,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    novel: Option<Vec<usize>>,
    ways: usize,
    shots: Vec<usize>,
    queries: usize,
    episodes: usize,
    seed: u64,
    layer: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let images = images(x, "x", Some(model.input_dim()))?;
    let y = labels(y, "y", images.matrix.rows(), None)?;
    let novel = novel.unwrap_or_else(|| bio_run::eval::novel_classes(&model.file.trained_classes, &y));
    if novel.is_empty() {
        return Err(value_error(
            "invalid value for `novel`: every class in `y` was seen in training; pass `novel` or train on base classes",
        ));
    }
    let params = bio_eval::EpisodeParams { ways, shots, queries, episodes, seed, code_densities: Vec::new() };
    let results = with_network!(py, model, |_b, net| {
        Ok(bio_eval::episodic(&net, &images.matrix, &y, &novel, layer, &params, EVAL_BATCH)?)
    })?;
    to_py_object(py, &results)
}

/// `biorule.oneshot`: `bio eval oneshot` for `model`: Lake's 20 Omniglot one-shot runs, one dict per
/// row (`features`, `centring`, per-run `errors` in percent, `mean`, `ci95`), reference rows first.
#[pyfunction]
#[pyo3(signature = (model, layer=None))]
fn oneshot<'py>(py: Python<'py>, model: &Model, layer: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
    let (_, rows) = with_network!(py, model, |_b, net| bio_run::oneshot::table(Some(&net), None, layer))?;
    to_py_object(py, &rows)
}

/// `biorule.fewlabels`: the few-labels protocol of `bio eval fewshot --protocol few-labels` (train
/// from scratch with `shots` labelled images per class, `seeds` repetitions each, on the dataset
/// `dataset`, scored on its test split); `options` are the rule's settings as `Trainer` takes them.
#[pyfunction]
#[pyo3(signature = (rule="bio", dataset="fashion-mnist", shots=vec![1, 5, 10, 50], seeds=3, hidden=None, seed=0, epochs=None, batch=100, unlabelled=false, hidden_epochs=1, data_dir=None, out=None, backend="cpu", **options))]
#[pyo3(
    text_signature = "(rule='bio', dataset='fashion-mnist', shots=[1, 5, 10, 50], seeds=3, hidden=None, seed=0, epochs=None, batch=100, unlabelled=False, hidden_epochs=1, data_dir=None, out=None, backend='cpu', **options)"
)]
#[allow(clippy::too_many_arguments)]
fn fewlabels<'py>(
    py: Python<'py>,
    rule: &str,
    dataset: &str,
    shots: Vec<usize>,
    seeds: usize,
    hidden: Option<Vec<usize>>,
    seed: u64,
    epochs: Option<usize>,
    batch: usize,
    unlabelled: bool,
    hidden_epochs: usize,
    data_dir: Option<PathBuf>,
    out: Option<PathBuf>,
    backend: &str,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    // The same width default as the CLI's few-labels protocol.
    let trainer = Trainer::new(rule, Some(hidden.unwrap_or_else(|| vec![1000])), seed, backend, options)?;
    let mut rule_options = trainer.spec(epochs.unwrap_or(1), batch, 0, "numpy", None).py_err()?.options;
    // None keeps the protocol's own rule: at least MIN_LABELLED_UPDATES updates on few labels.
    rule_options.epochs = epochs;
    let spec = bio_run::eval::FewLabelsSpec {
        rule: bio_run::RuleName::new(rule.to_string()),
        options: rule_options,
        dataset: dataset.to_string(),
        data_dir,
        shots,
        seeds,
        unlabelled,
        hidden_epochs,
        out,
    };
    spec.check().py_err()?;
    let backend = resolve(trainer.backend)?;
    let report =
        py.detach(|| guarded(|| on_backend!(&backend, |b| bio_run::eval::few_labels(b, &spec, |_| {})))).py_err()?;
    to_py_object(py, &report)
}

/// `biorule.continual`: the continual-learning protocols of `bio eval continual`; each keyword is a
/// setting of its command line, underscored (`methods=["bio", "bp-replay"]`, `scenario=["class"]`,
/// `iterations=500`, `hidden=[400]`, `batch=128`, `out="runs/cl"`, a rule's setting such as
/// `hebbian_rate=0.02`). Returns the report as a dict (`runs` with each `accuracy.r`, `summary`).
#[pyfunction]
#[pyo3(signature = (backend="cpu", **settings))]
fn continual<'py>(
    py: Python<'py>,
    backend: &str,
    settings: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut map = serde_json::Map::new();
    for (key, value) in settings.into_iter().flat_map(|d| d.iter()) {
        let name: String = key.extract()?;
        map.insert(name.clone(), py_to_json(&value, &name)?);
    }
    let spec = bio_run::continual::ContinualSpec::from_settings(&map).py_err()?;
    spec.check().py_err()?;
    let backend = resolve(backend_choice(backend)?)?;
    let report = py
        .detach(|| guarded(|| on_backend!(&backend, |b| bio_run::continual::continual(b, &spec, |_, _, _, _| {}))))
        .py_err()?;
    to_py_object(py, &report)
}

/// The extension module `biorule._biorule`.
#[pymodule]
fn _biorule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DivergedError", m.py().get_type::<DivergedError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RULE_OPTIONS", rule_option_names())?;
    m.add("RULES", bio_core::rules::rules().iter().map(|r| r.name).collect::<Vec<_>>())?;
    m.add_class::<Trainer>()?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(resume, m)?)?;
    m.add_function(wrap_pyfunction!(attack, m)?)?;
    m.add_function(wrap_pyfunction!(metrics, m)?)?;
    m.add_function(wrap_pyfunction!(fewshot, m)?)?;
    m.add_function(wrap_pyfunction!(oneshot, m)?)?;
    m.add_function(wrap_pyfunction!(fewlabels, m)?)?;
    m.add_function(wrap_pyfunction!(continual, m)?)?;
    Ok(())
}
