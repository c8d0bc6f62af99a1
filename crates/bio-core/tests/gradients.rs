//! The hand-derived input gradients of both models against central finite differences.

use bio_core::{
    BioNet, BioParams, BpNet, BpParams, Classifier, Competition, Matrix, Mechanisms, ReferenceBackend, TensorStore,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_inputs(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Matrix::from_fn(rows, cols, |_, _| rng.random_range(0.05f32..1.0))
}

use bio_core::conformance::{finite_difference_error, input_gradient_error as gradient_error};

fn bio_net(competition: Competition, layers: Vec<usize>, enabled: bool, seed: u64) -> BioNet<ReferenceBackend> {
    let params = BioParams {
        hidden: layers,
        active_fraction: 0.25,
        competition,
        mechanisms: Mechanisms { competition: enabled, ..Default::default() },
        ..Default::default()
    };
    let mut net = BioNet::init(&ReferenceBackend, params.check().unwrap(), 12, 3, seed);
    // Random, distinct biases and readout weights so no unit ties with another.
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    for l in &mut net.layers {
        let (_, n) = l.bias.shape();
        l.bias = Matrix::from_fn(1, n, |_, _| rng.random_range(-0.2f32..0.2));
    }
    let (c, n) = net.readout.weights.shape();
    net.readout.weights = Matrix::from_fn(c, n, |_, _| rng.random_range(0.1f32..3.0));
    net
}

#[test]
fn bio_kwta_gradient_matches_finite_differences() {
    for seed in 0..3 {
        let net = bio_net(Competition::KWinners, vec![16], true, seed);
        let err = gradient_error(&net, &random_inputs(4, 12, seed + 10), &[0, 1, 2, 1]);
        assert!(err < 2e-2, "seed {seed}: relative error {err}");
    }
}

#[test]
fn bio_two_layer_gradient_matches_finite_differences() {
    let net = bio_net(Competition::KWinners, vec![16, 12], true, 7);
    let err = gradient_error(&net, &random_inputs(3, 12, 3), &[2, 0, 1]);
    assert!(err < 2e-2, "relative error {err}");
}

#[test]
fn bio_feedforward_inhibition_gradient_matches_finite_differences() {
    let mut net = bio_net(Competition::KWinners, vec![16], true, 11);
    let mut config = (*net.config).clone();
    config.feedforward_inhibition = 0.8;
    net.config = config.check().unwrap();
    let err = gradient_error(&net, &random_inputs(4, 12, 12), &[2, 1, 0, 1]);
    assert!(err < 2e-2, "relative error {err}");
}

#[test]
fn bio_response_power_gradient_matches_finite_differences() {
    for (seed, power) in [(21, 2.0), (22, 4.5)] {
        let mut net = bio_net(Competition::KWinners, vec![16], true, seed);
        let mut config = (*net.config).clone();
        config.response_power = power;
        net.config = config.check().unwrap();
        let err = gradient_error(&net, &random_inputs(4, 12, seed + 1), &[2, 1, 0, 1]);
        assert!(err < 2e-2, "power {power}: relative error {err}");
    }
}

#[test]
fn bio_inhibitory_unit_gradient_matches_finite_differences() {
    let net = bio_net(Competition::Inhibitory { gain: 0.5 }, vec![16], true, 4);
    let err = gradient_error(&net, &random_inputs(4, 12, 5), &[1, 1, 0, 2]);
    assert!(err < 2e-2, "relative error {err}");
}

#[test]
fn bio_without_competition_gradient_matches_finite_differences() {
    let net = bio_net(Competition::KWinners, vec![16], false, 5);
    let err = gradient_error(&net, &random_inputs(4, 12, 6), &[0, 2, 1, 0]);
    assert!(err < 2e-2, "relative error {err}");
}

#[test]
fn bp_gradient_matches_finite_differences() {
    let config = BpParams { hidden: vec![16, 8], ..Default::default() }.check().unwrap();
    let net = BpNet::init(&ReferenceBackend, config, 12, 3, 9);
    let err = gradient_error(&net, &random_inputs(4, 12, 8), &[0, 1, 2, 0]);
    assert!(err < 2e-2, "relative error {err}");
}

#[test]
fn wrong_gradient_would_be_caught() {
    // The check itself must be able to fail: a model whose gradient is scaled is rejected.
    struct Scaled(BpNet<ReferenceBackend>);
    impl Classifier<ReferenceBackend> for Scaled {
        fn backend(&self) -> &ReferenceBackend {
            self.0.backend()
        }
        fn input_dim(&self) -> usize {
            self.0.input_dim()
        }
        fn classes(&self) -> usize {
            self.0.classes()
        }
        fn logits(&self, x: &Matrix) -> Matrix {
            self.0.logits(x)
        }
        fn hidden_activity(&self, x: &Matrix) -> Vec<Matrix> {
            self.0.hidden_activity(x)
        }
        fn logits_and_input_vjp(&self, x: &Matrix, dlogits: &mut dyn FnMut(&Matrix) -> Matrix) -> (Matrix, Matrix) {
            let (z, g) = self.0.logits_and_input_vjp(x, dlogits);
            let (r, c) = g.shape();
            (z, Matrix::from_fn(r, c, |i, j| 1.5 * g.get(i, j)))
        }
        fn to_params(&self) -> bio_core::Params {
            self.0.to_params()
        }
    }
    let config = BpParams { hidden: vec![8], ..Default::default() }.check().unwrap();
    let net = Scaled(BpNet::init(&ReferenceBackend, config, 12, 3, 1));
    assert!(gradient_error(&net, &random_inputs(2, 12, 1), &[0, 1]) > 0.1);
}

#[test]
fn a_diverged_model_reports_a_non_finite_loss() {
    // NaN weights must surface as a NaN loss (so training stops), not be clamped into a finite one.
    let mut net = bio_net(Competition::KWinners, vec![16], true, 2);
    let (c, n) = net.readout.weights.shape();
    net.readout.weights = Matrix::full(c, n, f32::NAN);
    let (losses, _) = net.loss_and_input_gradient(&ReferenceBackend.upload(&random_inputs(2, 12, 1)), &[0, 1]);
    assert!(losses.iter().all(|l| l.is_nan()), "{losses:?}");
}

/// Relative error between `(∂z/∂x)ᵀ·g` for a fixed random `g` and central differences of `Σ g·z`:
/// the vector–Jacobian product every attack loss goes through, not only cross-entropy's.
fn vjp_error<M: Classifier<ReferenceBackend>>(model: &M, x: &Matrix, seed: u64) -> f32 {
    let b = ReferenceBackend;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g = Matrix::from_fn(x.rows(), model.classes(), |_, _| rng.random_range(-1.0f32..1.0));
    let (_, vjp) = model.logits_and_input_vjp(&b.upload(x), &mut |_| g.clone());
    let objective = |m: &Matrix| {
        let z = model.logits(&b.upload(m));
        z.as_slice().iter().zip(g.as_slice()).map(|(&a, &w)| a as f64 * w as f64).sum::<f64>()
    };
    finite_difference_error(x, &vjp, objective)
}

#[test]
fn vector_jacobian_products_match_finite_differences() {
    for seed in 0..3 {
        let bio = bio_net(Competition::KWinners, vec![16], true, seed);
        let err = vjp_error(&bio, &random_inputs(3, 12, seed + 20), seed);
        assert!(err < 2e-2, "bio, seed {seed}: relative error {err}");
        let config = BpParams { hidden: vec![16, 8], ..Default::default() }.check().unwrap();
        let bp = BpNet::init(&ReferenceBackend, config, 12, 3, seed);
        let err = vjp_error(&bp, &random_inputs(3, 12, seed + 30), seed);
        assert!(err < 2e-2, "bp, seed {seed}: relative error {err}");
    }
}

fn max_abs_difference(a: &Matrix, b: &Matrix) -> f32 {
    a.as_slice().iter().zip(b.as_slice()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn surrogate_gradient_tends_to_the_exact_one_as_its_temperature_falls() {
    for (competition, enabled) in
        [(Competition::KWinners, true), (Competition::Inhibitory { gain: 1.0 }, true), (Competition::KWinners, false)]
    {
        let net = bio_net(competition, vec![16, 12], enabled, 5);
        let x = ReferenceBackend.upload(&random_inputs(4, 12, 6));
        let labels = [0, 1, 2, 1];
        let (exact_loss, exact) = net.loss_and_input_gradient(&x, &labels);
        let scale = exact.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let cold = bio_core::SurrogateBio::new(&net, 1e-4);
        let (cold_loss, cold_grad) = cold.loss_and_input_gradient(&x, &labels);
        // The forward pass is the exact one, whatever the temperature.
        assert_eq!(exact_loss, cold_loss);
        let err = max_abs_difference(&exact, &cold_grad);
        assert!(err <= 1e-4 * scale, "{competition:?}: cold surrogate differs by {err} (scale {scale})");
        // A warm surrogate is a different gradient: the test above can tell them apart.
        let (_, warm_grad) = bio_core::SurrogateBio::new(&net, 1.0).loss_and_input_gradient(&x, &labels);
        let err = max_abs_difference(&exact, &warm_grad);
        assert!(err > 1e-2 * scale, "{competition:?}: warm surrogate equals the exact gradient ({err})");
    }
}

/// Every registered rule's model, freshly initialized at its defaults, has an input gradient that
/// matches finite differences (so every attack works on it).
#[test]
fn every_registered_rule_has_an_exact_input_gradient() {
    struct Fd;
    impl bio_core::rules::RuleVisitor<ReferenceBackend> for Fd {
        type Output = Vec<f32>;
        fn visit<R: bio_core::rules::Rule + bio_core::LearningRule<ReferenceBackend>>(self) -> Vec<f32> {
            let config = bio_core::rules::config_from_settings::<R>(&[16], &Default::default()).unwrap();
            let inputs = R::example_input_dim(&config);
            let rule = R::new(config, 0);
            (0..3)
                .map(|seed| {
                    let model = rule.init_model(&ReferenceBackend, inputs, 3, seed);
                    gradient_error(&model, &random_inputs(4, inputs, seed + 40), &[0, 1, 2, 1])
                })
                .collect()
        }
    }
    for rule in bio_core::rules::rules() {
        let errors = bio_core::rules::dispatch(rule.name, Fd).unwrap();
        assert!(errors.iter().all(|&e| e < 2e-2), "`{}`: relative errors {errors:?}", rule.name);
    }
}
