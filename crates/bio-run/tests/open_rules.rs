//! The rule set is open: a rule defined only in this file (not in the registry) trains, writes its
//! checkpoints, stops and resumes to the same bits through the session's generic path, with its
//! own declared setting read from the spec.

use std::path::Path;

use bio_core::forward::Op;
use bio_core::rules::{RngState, Rule, RuleOption, RuleState};
use bio_core::{
    Backend, BatchReport, Binary, Classifier, CoreError, LearningRule, Matrix, Params, SavedModel, TensorStore,
};
use bio_cpu::CpuBackend;
use bio_run::{Event, Outcome, Resumable, RuleName, RuleOptions, Session, SessionSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Prototype rule: each class's weight row moves toward the mean image of that class in the batch,
/// classified by the nearest mean, with a little noise from the rule's random stream (so that resuming must restore the stream).
struct Prototypes {
    config: PrototypeParams,
    rng: ChaCha8Rng,
    steps: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PrototypeParams {
    hidden: Vec<usize>,
    rate: f32,
}

impl Default for PrototypeParams {
    fn default() -> Self {
        PrototypeParams { hidden: vec![1], rate: 0.5 }
    }
}

#[derive(Clone)]
struct PrototypeNet<B: Backend> {
    backend: B,
    weights: B::Tensor,
    input_dim: usize,
    classes: usize,
}

impl<B: Backend> Classifier<B> for PrototypeNet<B> {
    fn backend(&self) -> &B {
        &self.backend
    }
    fn input_dim(&self) -> usize {
        self.input_dim
    }
    fn classes(&self) -> usize {
        self.classes
    }
    /// Nearest class mean: `z_c = x·w_c − ½‖w_c‖²` (= −½‖x − w_c‖² up to a per-image constant).
    fn logits(&self, x: &B::Tensor) -> B::Tensor {
        let b = &self.backend;
        let w = b.download(&self.weights);
        let half_norms =
            (0..self.classes).map(|c| -0.5 * (0..self.input_dim).map(|j| w.get(c, j).powi(2)).sum::<f32>());
        let bias = b.upload(&Matrix::row_vector(half_norms.collect()));
        b.zip(&b.matmul(x, false, &self.weights, true), &bias, Binary::Add)
    }
    fn hidden_activity(&self, x: &B::Tensor) -> Vec<B::Tensor> {
        // One layer of units, the class scores (the biological metrics pair it with `prototype.weight`).
        vec![self.logits(x)]
    }
    fn logits_and_input_vjp(
        &self,
        x: &B::Tensor,
        dlogits: &mut dyn FnMut(&B::Tensor) -> B::Tensor,
    ) -> (B::Tensor, B::Tensor) {
        let z = self.logits(x);
        let g = dlogits(&z);
        let dx = self.backend.matmul(&g, false, &self.weights, false);
        (z, dx)
    }
    fn to_params(&self) -> Params {
        let mut p = Params::default();
        let w = self.backend.download(&self.weights);
        // The bias the logits add, derived from the weights (exported so that the pass is a `linear` op).
        let half_norms = (0..self.classes).map(|c| -0.5 * w.row(c).iter().map(|v| v * v).sum::<f32>()).collect();
        p.push("prototype.weight", w);
        p.push("prototype.bias", Matrix::row_vector(half_norms));
        p
    }
}

#[derive(Serialize, Deserialize)]
struct PrototypeState {
    steps: u64,
    rng: RngState,
}

impl<B: Backend> LearningRule<B> for Prototypes {
    type Model = PrototypeNet<B>;

    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn init_model(&self, backend: &B, input_dim: usize, classes: usize, _seed: u64) -> PrototypeNet<B> {
        PrototypeNet { backend: backend.clone(), weights: backend.full(classes, input_dim, 0.0), input_dim, classes }
    }
    fn model_from_params(
        &self,
        backend: &B,
        input_dim: usize,
        classes: usize,
        params: &Params,
    ) -> Result<PrototypeNet<B>, CoreError> {
        let weights = backend.upload(params.get("prototype.weight", (classes, input_dim))?);
        Ok(PrototypeNet { backend: backend.clone(), weights, input_dim, classes })
    }
    fn start_epoch(&mut self, _epoch: usize, _epochs: usize) {}
    fn train_batch(
        &mut self,
        model: &mut PrototypeNet<B>,
        x: &B::Tensor,
        labels: &[usize],
    ) -> Result<BatchReport, CoreError> {
        let b = model.backend.clone();
        let predicted = b.argmax_rows(&model.logits(x));
        let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        let (images, mut w) = (b.download(x), b.download(&model.weights));
        for c in 0..model.classes {
            let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
            if rows.is_empty() {
                continue;
            }
            for j in 0..model.input_dim {
                let mean = rows.iter().map(|&i| images.get(i, j)).sum::<f32>() / rows.len() as f32;
                let noise = self.rng.random_range(-1e-3..1e-3);
                let old = w.get(c, j);
                w.set(c, j, old + self.config.rate * (mean - old) + noise);
            }
        }
        model.weights = b.upload(&w);
        self.steps += 1;
        Ok(BatchReport { loss: 1.0, correct, samples: labels.len(), active_fraction: 1.0 })
    }
    fn save_state(&self, _model: &PrototypeNet<B>) -> RuleState {
        RuleState::encode(Self::NAME, &PrototypeState { steps: self.steps, rng: RngState::capture(&self.rng) })
    }
    fn restore_state(&mut self, _model: &PrototypeNet<B>, state: RuleState) -> Result<(), CoreError> {
        let state: PrototypeState = state.decode(Self::NAME)?;
        (self.steps, self.rng) = (state.steps, state.rng.restore());
        Ok(())
    }
}

impl Rule for Prototypes {
    const NAME: &'static str = "prototypes";
    const SUMMARY: &'static str = "class-mean prototypes (a test rule)";
    const FORWARD: &'static str = "logits = x @ prototype.weight^T";
    const OPTIONS: &'static [RuleOption] =
        &[bio_core::rule_option!(PrototypeParams, "prototypes-rate", rate, "step toward the class mean")];
    const SCHEDULE_DEPENDS_ON_EPOCHS: bool = false;
    const COPIES_PER_WEIGHT: u64 = 2;
    type Params = PrototypeParams;
    type Config = PrototypeParams;

    fn check(params: PrototypeParams) -> Result<PrototypeParams, CoreError> {
        if !(params.rate > 0.0 && params.rate <= 1.0) {
            return Err(CoreError::invalid("prototypes-rate", format!("must be in (0, 1], got {}", params.rate)));
        }
        Ok(params)
    }
    fn hidden(config: &PrototypeParams) -> &[usize] {
        &config.hidden
    }
    fn forward_pass(_: &PrototypeParams, _input_dim: usize, _classes: usize) -> Result<Vec<Op>, CoreError> {
        Ok(vec![Op::Linear { weight: "prototype.weight".into(), bias: Some("prototype.bias".into()) }])
    }
    fn new(config: PrototypeParams, seed: u64) -> Self {
        Prototypes { config, rng: ChaCha8Rng::seed_from_u64(seed), steps: 0 }
    }
}

fn spec(out: &Path, rate: f64) -> SessionSpec {
    let mut options = RuleOptions { hidden: vec![1], epochs: Some(2), ..RuleOptions::default() };
    options.settings.0.insert("prototypes-rate".into(), json!(rate));
    let mut spec =
        SessionSpec { rule: RuleName::new("prototypes"), options, out: Some(out.into()), ..SessionSpec::default() };
    spec.data.dataset = "embedded".into();
    spec
}

#[test]
fn a_rule_defined_outside_the_registry_trains_checkpoints_and_resumes() {
    let b = CpuBackend::new();
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = Session::builder(spec(straight_dir.path(), 0.25)).rule::<Prototypes>().build().unwrap();
    let straight = straight.run_unregistered::<_, Prototypes>(&b, &mut ()).unwrap().finished().unwrap();
    assert_eq!(straight.model.rule(), "prototypes");
    assert!(straight.metrics.test_accuracy > 0.5, "class means classify the embedded images");
    let saved: PrototypeParams = straight.model.config_of::<Prototypes>().unwrap();
    assert_eq!(saved.rate, 0.25, "the declared setting reached the rule");

    let dir = tempfile::tempdir().unwrap();
    let session = Session::builder(spec(dir.path(), 0.25)).rule::<Prototypes>().build().unwrap();
    let stop = session.stop_flag();
    let mut stop_at = |e: &Event| {
        if let Event::Batch { done_batches: 70, .. } = e {
            stop.stop();
        }
    };
    let Outcome::Interrupted { epochs_done: 1, batches_done: 10, .. } =
        session.run_unregistered::<_, Prototypes>(&b, &mut stop_at).unwrap()
    else {
        panic!("expected a stop 10 batches into the second epoch");
    };
    let resumed = Session::resuming(Resumable::read(dir.path()).unwrap()).rule::<Prototypes>().build().unwrap();
    let resumed = resumed.run_unregistered::<_, Prototypes>(&b, &mut ()).unwrap().finished().unwrap();
    let bits = |m: &SavedModel| m.params.tensors[0].1.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed.model), bits(&straight.model), "resumed to the same bits");
}

#[test]
fn an_unregistered_rule_is_refused_by_name_and_its_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let err = Session::new(spec(dir.path(), 0.25)).err().expect("not in the registry").to_string();
    assert!(err.contains("unknown learning rule `prototypes`") && err.contains("bio"), "{err}");
    let err =
        Session::builder(spec(dir.path(), 2.0)).rule::<Prototypes>().build().err().expect("out of range").to_string();
    assert!(err.contains("prototypes-rate"), "{err}");
    let mut bad = spec(dir.path(), 0.25);
    bad.options.settings.0.insert("prototypes-rate".into(), json!("fast"));
    let err = Session::builder(bad).rule::<Prototypes>().build().err().expect("not a number").to_string();
    assert!(err.contains("invalid value for `prototypes-rate`"), "{err}");
    let mut foreign = spec(dir.path(), 0.25);
    foreign.options.settings.0.insert("hebbian-rate".into(), json!(0.1));
    let err = Session::builder(foreign).rule::<Prototypes>().build().err().expect("a bio flag").to_string();
    assert!(err.contains("`hebbian-rate`: it is a setting of the `bio` rule"), "{err}");
}

#[test]
fn its_forward_pass_as_ops_gives_its_logits() {
    // What an export and Python's `to_torch()` rebuild the model from (`bio_core::forward`).
    let b = CpuBackend::new();
    let config = PrototypeParams::default();
    let ops = Prototypes::forward_pass(&config, 6, 3).unwrap();
    let mut rule = Prototypes::new(config, 0);
    let mut model = rule.init_model(&b, 6, 3, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Matrix::from_fn(9, 6, |_, _| rng.random_range(0.0f32..1.0));
    rule.train_batch(&mut model, &b.upload(&x), &[0, 1, 2, 0, 1, 2, 0, 1, 2]).unwrap();
    let expected = b.download(&model.logits(&b.upload(&x)));
    let got = bio_core::forward::run(&ops, &model.to_params(), &x).unwrap();
    assert!(got.max_abs_diff(&expected) < 1e-5, "{got:?} vs {expected:?}");
    assert!(expected.as_slice().iter().any(|v| v.abs() > 1e-2), "trained logits are not all zero");
}
