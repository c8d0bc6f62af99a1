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
use bio_eval::{AttackName, AttackParams};
use bio_run::{BackendChoice, EVAL_BATCH, Event, Outcome, Resolved, Session, SessionSpec, TrainMetrics, on_backend};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use serde_json::Value;

use crate::arrays::{Images, images, images_to_py, labels, labels_to_py, matrix_to_py};
use crate::convert::{layer_widths, py_to_json, to_py_object};
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

/// Trains networks with any registered rule (``RULES``: ``bio``, backprop ``bp``, Krotov–Hopfield
/// ``kh``, ``softhebb``, the convolutional ``conv`` and ``bpconv``).
///
/// ``options`` are the ``bio train`` flags by their Python names (``hebbian_rate=0.01``,
/// ``competition="inhibitory"``, ``ablate=["homeostasis"]``, ``optimizer="momentum"``, ``lr=0.05``,
/// ``kh_p=3``…; see ``RULE_OPTIONS``). An unknown name, a bad value, or an option of another rule
/// raises ``ValueError`` naming it. ``hidden`` is a list of layer widths (``[400]``). ``backend`` is
/// ``"cpu"``, ``"cuda"`` or ``"auto"``.
//
// The docstrings of this module are what `help()` shows; `python/biorule/__init__.pyi` repeats
// them for editors, and `tests/test_docs.py` checks that both say the same.
#[pyclass(module = "biorule", frozen)]
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
                return Err(bio_core::CoreError::invalid(name.clone(), format!("{value} ({e})")).into());
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

    /// `Trainer(…)` with the hidden widths already read.
    fn with_widths(
        rule: &str,
        hidden: Vec<usize>,
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
        let trainer =
            Trainer { rule: rule.to_string(), hidden, seed, backend: backend_choice(backend)?, options: parsed };
        // Refuse bad settings now rather than at `fit` (epochs and batch are checked there).
        trainer.spec(1, 100, 0, "numpy", None).py_err()?;
        Ok(trainer)
    }
}

#[pymethods]
impl Trainer {
    #[new]
    #[pyo3(signature = (rule="bio", hidden=None, seed=0, backend="cpu", **options))]
    fn new(
        rule: &str,
        hidden: Option<&Bound<'_, PyAny>>,
        seed: u64,
        backend: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let hidden = layer_widths(hidden, "hidden")?.unwrap_or_else(|| vec![2000]);
        Trainer::with_widths(rule, hidden, seed, backend, options)
    }

    /// Trains a new network and returns it.
    ///
    /// - ``epochs``: the rule's default (10 for ``bio`` and ``bp``, 20 for ``kh`` and ``softhebb``). ``validation``: hold out that many training images
    ///   and report accuracy on them each epoch.
    /// - ``x_test, y_test``: the test split measured at the end (``model.metrics``); without them
    ///   the training images are used, so ``metrics["test_accuracy"]`` is then training accuracy.
    /// - ``out``: a directory to write the run into as ``bio train --out`` does (``model.ckpt``,
    ///   ``state.ckpt``, ``config.json``, ``metrics.json``); a directory holding a run is refused
    ///   unless ``force``. ``dataset``: the name recorded there (default ``"numpy"``; give
    ///   ``"embedded"`` or ``"fashion-mnist"`` when the arrays came from that dataset, so that
    ///   ``bio eval accuracy --model DIR`` and ``bio train --resume DIR`` can reload it).
    /// - ``callback(report)``: called after each epoch with a dict (``epoch``, ``epochs``, ``loss``,
    ///   ``train_accuracy``, ``active_fraction``, ``seconds``, and ``validation_accuracy`` with
    ///   validation). If it raises, training stops at that point (with ``out``, ``state.ckpt`` is
    ///   written, so ``bio train --resume DIR`` continues the run bit-identically) and the exception
    ///   propagates. Ctrl-C (``KeyboardInterrupt``) does the same after the batch in progress.
    /// - ``progress``: ``None``/``False`` (default) shows nothing. ``True`` shows one bar over all
    ///   batches of the run, described by the epoch, with the last epoch's loss and accuracies:
    ///   a ``tqdm.auto.tqdm`` bar when tqdm is installed, else a one-line text display on stderr.
    ///   A tqdm-like class (e.g. ``tqdm.notebook.tqdm``) is used as given: it is called as
    ///   ``cls(total=…, initial=…, unit="batch", desc=…)`` and driven by ``update``,
    ///   ``set_description``, ``set_postfix`` and ``close`` (closed even when training stops
    ///   early).
    ///
    /// Raises ``ValueError`` for bad arguments, shapes or dtypes, ``OSError`` for files,
    /// ``DivergedError`` when training diverges. The GIL is released while training.
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

/// Continues the run saved in ``dir`` (stopped by a raising callback, Ctrl-C, or a killed
/// ``bio train``) to its end, as ``bio train --resume DIR`` does: the weights equal those of one
/// uninterrupted run. Its data is reloaded by the dataset name recorded at ``fit`` (so a run on
/// arbitrary arrays, recorded as ``"numpy"``, cannot be resumed). ``callback`` and ``progress`` as
/// in ``Trainer.fit`` (the bar starts at the batches already trained).
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

/// A trained network (any rule). Images are float arrays ``(n, pixels)`` or ``(n, h, w)``,
/// float32 or float64, any memory order, pixels in ``[0, 1]``; a wrong shape or dtype raises
/// ``ValueError``.
//
// Held in backend-free form and run on the backend it was trained or loaded with.
#[pyclass(module = "biorule", frozen)]
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
    /// The rule that trained it (one of ``RULES``).
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

    /// Dataset name recorded in the model file (``bio eval`` reloads its test set by it).
    #[getter]
    fn dataset(&self) -> &str {
        &self.file.dataset
    }

    /// What training measured (the ``metrics.json`` of ``bio train``): ``test_accuracy``,
    /// per-epoch ``history``, ``biology``…; None for a loaded model without ``metrics.json``.
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.metrics.as_ref().map(|m| to_py_object(py, m)).transpose()
    }

    /// Predicted class of each image, shape ``(n,)``.
    fn predict<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let logits = self.run(py, x, Output::Logits)?;
        Ok(labels_to_py(py, &argmax_rows(&logits)).into_any())
    }

    /// Softmax class probabilities, shape ``(n, classes)``.
    fn predict_proba<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let p = self.run(py, x, Output::Probabilities)?;
        matrix_to_py(py, &p)
    }

    /// Class scores before the softmax, shape ``(n, classes)``.
    fn logits<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let z = self.run(py, x, Output::Logits)?;
        matrix_to_py(py, &z)
    }

    /// Activity of hidden layer ``layer`` (0 = first), shape ``(n, width)``.
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

    /// Per-sample cross-entropy losses ``(n,)`` and their exact gradient with respect to the
    /// images, shaped like ``x`` (what the attacks follow).
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

    /// The documented forward pass of this model in words, with its constants and every tensor's
    /// name and shape (the ``forward`` metadata of ``bio export``); empty for a rule without one.
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

    /// A ``torch.nn.Module`` (float32, in eval mode) whose ``forward(x)`` returns this model's
    /// logits for images ``x`` ``(n, pixels)`` or ``(n, h, w)``, computed with the rule's documented
    /// forward pass from this model's weights, so torchattacks or any PyTorch tool can use it.
    /// Autograd through it gives ``input_gradient``'s gradient: ``bio``'s k-winners-take-all
    /// threshold is the gathered (k+1)-th largest drive (``torch.topk``), differentiated as in the
    /// Rust backward pass, not held constant. ``x`` may be float32 or float64 (cast to the module's
    /// dtype, as the other methods cast NumPy images); integer images are refused with a
    /// ``TypeError``. The module also has ``rule`` and ``forward_text``.
    /// Raises ``ImportError`` when PyTorch is not installed.
    fn to_torch<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("biorule._torch")?.call_method1("to_torch", (slf,))
    }

    /// Every parameter by name, as 2-D arrays (biases are ``(1, n)``). ``bio``:
    /// ``hidden.N.weight`` ``(width, inputs)``, ``hidden.N.mask``, ``hidden.N.bias``, ``hidden.N.rate``,
    /// ``readout.weight`` ``(classes, width)``, ``readout.bias``. ``bp``: ``layer.N.weight``,
    /// ``layer.N.bias`` (the last layer is the readout).
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, m) in &self.file.model.params().tensors {
            dict.set_item(name, matrix_to_py(py, m)?)?;
        }
        Ok(dict)
    }

    /// Writes ``dir/model.ckpt``, the file ``bio eval … --model DIR`` reads, and, when the model
    /// knows what training measured (``metrics``), ``dir/metrics.json`` as ``bio train`` writes it,
    /// so that ``bio report DIR`` shows the run. A directory holding a run is refused
    /// (``ValueError``) unless ``overwrite``, which removes that run's files.
    #[pyo3(signature = (dir, overwrite=false))]
    fn save(&self, py: Python<'_>, dir: PathBuf, overwrite: bool) -> PyResult<()> {
        py.detach(|| {
            guarded(|| {
                if let Some(found) = bio_run::files::RUN_FILES.iter().find(|f| dir.join(f).exists()) {
                    if !overwrite {
                        bio_run::invalid!(
                            "dir",
                            "{} already holds a run ({found}); pass overwrite=True to replace it",
                            dir.display()
                        );
                    }
                    for stale in bio_run::files::RUN_FILES.map(|f| dir.join(f)).iter().filter(|p| p.exists()) {
                        std::fs::remove_file(stale).with_context(|| format!("removing {}", stale.display()))?;
                    }
                }
                bio_data::ensure_output_dir(&dir)?;
                model_dir::save_model(&dir, &self.file)?;
                // No `config.json` or `state.ckpt`: a saved model is a finished result, not a run
                // `bio train --resume` could continue.
                if let Some(metrics) = &self.metrics {
                    bio_run::files::save_metrics(&dir, metrics)?;
                }
                Ok(())
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

/// Loads a model directory (or its ``model.ckpt``) written by ``bio train``,
/// ``Trainer.fit(out=…)`` or ``Model.save``.
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

/// The ensemble `params` on `x, y` at radius `eps`, through the function `bio eval robustness`
/// runs: whether each image stays robust (right clean and fooled by no attack), and their fraction.
fn ensemble_on<B: Backend>(
    model: &impl Classifier<B>,
    params: &bio_eval::EnsembleParams,
    eps: f32,
    x: &Matrix,
    y: &[usize],
) -> Result<(Vec<bool>, f64)> {
    let report = bio_run::robustness::ensemble(model, None, params, &[eps], x, y, |_| {})?;
    let point = report.points.into_iter().next().context("the ensemble measured no radius")?;
    Ok((point.robust_images, point.accuracy))
}

/// An attack of ``bio eval robustness --attack`` (names in ``ATTACKS``) on ``x, y`` at radius
/// ``eps``, with the CLI's settings and ``seed``; ``x`` must hold pixels in ``[0, 1]``.
///
/// A single attack, ``"pgd"`` (``steps`` iterations, random start, L∞), ``"pgd-l2"`` (the same in
/// the L2 ball), ``"fgsm"`` or the gradient-free ``"square"`` (``queries`` model queries per
/// image, default 1000), returns the adversarial images (shaped like ``x``, within the ball and
/// inside ``[0, 1]``) and the robust accuracy (right on both the clean and the attacked image).
///
/// ``"strongest"`` (the ensemble APGD-CE, APGD-T, surrogate gradient and Square, ``queries``
/// default 5000, ``iterations`` APGD iterations, default 100), or one of its members
/// ``"apgd-ce"``, ``"apgd-t"``, ``"surrogate"``, returns the worst case per image, a bool array
/// (right clean and fooled by no attack), and its mean, exactly as ``bio eval robustness --attack
/// strongest --eps EPS`` measures them on the same images (the same function runs). ``"transfer"``
/// needs a source model and is refused. Same ``seed``, same result.
#[pyfunction]
#[pyo3(signature = (model, x, y, attack="pgd", eps=0.1, steps=40, seed=0, queries=None, iterations=None))]
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
    iterations: Option<usize>,
) -> PyResult<Bound<'py, PyTuple>> {
    let name: AttackName = attack.parse().py_err()?;
    // The CLI's translation of its flags, so that both run the same settings.
    let defaults = bio_run::robustness::RobustnessSpec::default();
    let spec = bio_run::robustness::RobustnessSpec {
        attack: vec![name],
        eps: vec![eps],
        steps,
        queries,
        iterations: iterations.unwrap_or(defaults.iterations),
        seed,
        ..defaults
    };
    spec.check().py_err()?;
    let images = images(x, "x", Some(model.input_dim()))?;
    let y = labels(y, "y", images.matrix.rows(), Some(model.classes()))?;
    if let Some(params) = spec.ensemble_params(name) {
        let (robust, accuracy) =
            with_network!(py, model, |_b, net| ensemble_on(&net, &params, eps, &images.matrix, &y))?;
        return PyTuple::new(py, [PyArray1::from_vec(py, robust).into_any(), accuracy.into_pyobject(py)?.into_any()]);
    }
    let checked = AttackParams { eps, ..spec.attack_params(name) }.check().py_err()?;
    let (adversarial, robust) =
        with_network!(py, model, |b, net| attack_on(b, &net, &checked, &images.matrix, &y, seed))?;
    PyTuple::new(py, [images_to_py(py, &adversarial, x)?, robust.into_pyobject(py)?.into_any()])
}

/// The biological metrics of ``bio eval metrics``, measured on ``x``: ``inputs`` and one entry
/// per weight matrix in ``layers`` (active fraction, lifetime sparseness, dead units, kept synapses,
/// lognormal fit of the weights, Dale index…).
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

/// The episodic few-shot protocol of ``bio eval fewshot`` on ``x, y``: ``ways``-way episodes of
/// the ``novel`` classes (default: those the model was not trained on), scored by cosine nearest
/// class mean and a linear probe on raw pixels, the hidden code and its drive before competition.
/// One dict per features × classifier × shots: ``features``, ``classifier``, ``shots``, ``mean``,
/// ``ci95`` …
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

/// ``bio eval oneshot``: Lake's 20 Omniglot one-shot runs (shipped with biorule) scored by the
/// Modified Hausdorff Distance, pixels, and ``model``'s hidden layer ``layer`` (default: the last)
/// as activity and drive, each plain and centred on the background mean. One dict per row:
/// ``features``, ``centring``, ``errors`` (percent per run), ``mean``, ``ci95``.
///
/// With ``episodes``, ``bio eval oneshot --episodes``: ``ways``-way ``shots``-shot episodes (``queries``
/// per class, seeded) drawn from every image of the classes of the model's dataset it was not trained
/// on (e.g. trained on ``omniglot-small1`` with ``classes`` 0-69,110-135: the Korean characters),
/// scored by cosine nearest class mean (``ncm``) and nearest neighbour (``nn``) on pixels, the hidden
/// code and drive, and the same of the model's own initialization (``init.``, the random-features
/// control), each plain and centred. One dict per row: ``features``, ``centring``, ``classifier``,
/// ``ways``, ``shots``, ``queries``, ``episodes``, ``mean``, ``ci95`` (accuracy, fractions).
#[pyfunction]
#[pyo3(signature = (model, layer=None, episodes=None, ways=vec![5, 20], shots=vec![1, 5], queries=15, seed=0, data_dir=None))]
#[pyo3(
    text_signature = "(model, layer=None, episodes=None, ways=[5, 20], shots=[1, 5], queries=15, seed=0, data_dir=None)"
)]
#[allow(clippy::too_many_arguments)]
fn oneshot<'py>(
    py: Python<'py>,
    model: &Model,
    layer: Option<usize>,
    episodes: Option<usize>,
    ways: Vec<usize>,
    shots: Vec<usize>,
    queries: usize,
    seed: u64,
    data_dir: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(episodes) = episodes else {
        let (_, rows) = with_network!(py, model, |_b, net| bio_run::oneshot::table(Some(&net), None, layer))?;
        return to_py_object(py, &rows);
    };
    let dataset = model.file.dataset.clone();
    if dataset == bio_run::data::ARRAYS_DATASET {
        return Err(value_error(
            "invalid value for `episodes`: the curves reload the model's dataset, but this model was fitted on arrays; \
             pass `dataset=` (e.g. \"omniglot-small1\") to `Trainer.fit`",
        ));
    }
    let params = bio_eval::oneshot::CurveParams { ways, shots, queries, episodes, seed };
    let rows = with_network!(py, model, |b, _net| {
        let data = bio_data::load(&dataset, data_dir.as_deref())?;
        let images = bio_run::oneshot::episode_images(&data, &model.file.trained_classes)?;
        bio_run::oneshot::curve_table(b, &model.file, &images, &params, layer)
    })?;
    to_py_object(py, &rows)
}

/// The few-labels protocol of ``bio eval fewshot --protocol few-labels``: for each ``K`` in
/// ``shots`` and each of ``seeds`` repetitions, trains a new ``rule`` network (``hidden``, default
/// ``[1000]``; ``options`` as ``Trainer`` takes them) from ``K`` labelled training images per class of
/// ``dataset`` (a name found as ``datasets.load`` finds it, or a directory) and scores it on the test
/// split. ``epochs``: of the labelled phase; by default the rule's, raised so that training makes at
/// least 500 updates. ``unlabelled`` (``bio`` only): also the variant whose hidden layers first see
/// the rest of the training set unlabelled for ``hidden_epochs`` epochs. ``out``: a directory to save
/// ``fewshot.json`` into. Returns a dict: ``rule``, ``dataset``, ``hidden``, ``epochs`` and
/// ``results``, one row per variant × ``K`` (``variant``, ``shots``, ``mean``, ``ci95``,
/// ``accuracies`` per seed …).
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
    hidden: Option<&Bound<'py, PyAny>>,
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
    let hidden = layer_widths(hidden, "hidden")?.unwrap_or_else(|| vec![1000]);
    let trainer = Trainer::with_widths(rule, hidden, seed, backend, options)?;
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

/// The continual-learning protocols of ``bio eval continual``: each keyword is one of its
/// settings, underscored (``experiment="split"``, ``scenario=["class"]``, ``methods=["bio", "bp",
/// "bp-replay", "ncm-random-kwta"]``, ``iterations=500``, ``hidden=[400]``, ``batch=128``,
/// ``seeds=3``, ``orders=3``, ``out=...``, or a rule's setting). Returns a dict: ``runs`` (each with
/// the accuracy matrix ``accuracy["r"]`` and ``metrics``) and ``summary`` (one row per scenario ×
/// method: ``average``, ``forgetting``, ``backward_transfer``, ``forward_transfer`` as (mean, ci95)).
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
        .detach(|| guarded(|| on_backend!(&backend, |b| bio_run::continual::continual(b, &spec, |_| {}))))
        .py_err()?;
    to_py_object(py, &report)
}

/// The compiled half of the ``biorule`` package: import its names from ``biorule``.
#[pymodule]
fn _biorule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DivergedError", m.py().get_type::<DivergedError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RULE_OPTIONS", rule_option_names())?;
    m.add("RULES", bio_core::rules::rules().iter().map(|r| r.name).collect::<Vec<_>>())?;
    m.add("ATTACKS", AttackName::ALL.iter().map(|a| a.name()).collect::<Vec<_>>())?;
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
