//! PGD adversarial training (Madry et al. 2018), shared by the rules trained by backprop (`bp`,
//! `bpconv`): each step trains on the PGD examples of the batch instead of the batch itself.
//!
//! A rule keeps the two settings as flat fields of its params under its own flags (`bp`:
//! `--adversarial-eps`, `--adversarial-steps`; `bpconv`: `--bpconv-adversarial-eps`,
//! `--bpconv-adversarial-steps`), reads them as one [`AdversarialTraining`], checks them with
//! [`AdversarialTraining::check`], and keeps the random stream of the starts in its saved state.
//! At `ε = 0` (the default) training is clean and no random number is drawn.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::checks::check_at_least;
use crate::backend::{Backend, Binary, Unary};
use crate::error::CoreError;
use crate::model::Classifier;
use crate::tensor::Matrix;

/// PGD steps per batch when none is given.
pub const DEFAULT_STEPS: usize = 10;

/// Help text of a rule's radius setting.
pub const EPS_HELP: &str = "L∞ radius of PGD adversarial training, 0 = clean training";

/// Help text of a rule's steps setting.
pub const STEPS_HELP: &str = "PGD steps per batch, step 2.5·ε/steps, random start";

/// [`DEFAULT_STEPS`], for serde defaults of params written before a rule had the setting.
pub(crate) fn default_steps() -> usize {
    DEFAULT_STEPS
}

/// The settings of PGD adversarial training: the L∞ radius `ε` (0 = clean training) and the
/// ascent steps per batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdversarialTraining {
    /// L∞ radius; 0 trains on clean inputs.
    pub eps: f32,
    /// PGD steps per batch (step size [`AdversarialTraining::step_size`]).
    pub steps: usize,
}

impl AdversarialTraining {
    /// Validates the settings, naming the rule's flags in the error: `ε` finite and ≥ 0, and at
    /// least one step when `ε > 0`.
    pub fn check(self, eps_flag: &'static str, steps_flag: &'static str) -> Result<Self, CoreError> {
        check_at_least(eps_flag, self.eps, 0.0)?;
        if self.is_on() && self.steps == 0 {
            return Err(CoreError::invalid(
                steps_flag,
                format!("must be ≥ 1 with adversarial training (--{eps_flag} {})", self.eps),
            ));
        }
        Ok(self)
    }

    /// Whether training is adversarial (`ε > 0`).
    pub fn is_on(self) -> bool {
        self.eps > 0.0
    }

    /// The PGD step size `α = 2.5·ε/steps`.
    pub fn step_size(self) -> f32 {
        2.5 * self.eps / self.steps as f32
    }

    /// The inputs to train on instead of `x`: its PGD examples ([`pgd_examples`]) when training
    /// is adversarial, `None` when it is clean (then nothing is drawn from `rng`).
    pub fn examples<B: Backend, M: Classifier<B>>(
        self,
        model: &M,
        x: &B::Tensor,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Option<B::Tensor> {
        self.is_on().then(|| pgd_examples(model, x, labels, self.eps, self.steps, rng))
    }
}

/// PGD adversarial examples (Madry et al. 2018) for training: from a uniform random start in the
/// L∞ ball of radius `ε` around `x`, `steps` ascent steps `x' ← clip(x' + α·sign(∇ₓL))` with
/// `α = 2.5ε/steps` on the summed cross-entropy `L`, clipped to the ball and to `[0, 1]` after each.
pub fn pgd_examples<B: Backend, M: Classifier<B>>(
    model: &M,
    x: &B::Tensor,
    labels: &[usize],
    eps: f32,
    steps: usize,
    rng: &mut ChaCha8Rng,
) -> B::Tensor {
    let b = model.backend();
    let (rows, cols) = b.shape(x);
    let noise = Matrix::from_fn(rows, cols, |_, _| rng.random_range(-eps..=eps));
    let (lo, hi) = (b.map(x, Unary::Offset(-eps)), b.map(x, Unary::Offset(eps)));
    let clip = |t: &B::Tensor| {
        let t = b.zip(&b.zip(t, &lo, Binary::Max), &hi, Binary::Min);
        b.map(&t, Unary::Clamp(0.0, 1.0))
    };
    let mut adv = clip(&b.lincomb(1.0, x, 1.0, &b.upload(&noise)));
    let alpha = AdversarialTraining { eps, steps }.step_size();
    for _ in 0..steps {
        let (_, grad) = model.loss_and_input_gradient(&adv, labels);
        adv = clip(&b.lincomb(1.0, &adv, alpha, &b.map(&grad, Unary::Sign)));
    }
    adv
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::backend::ReferenceBackend;
    use crate::rules::bp::model::BpNet;
    use crate::rules::bp::params::BpParams;
    use crate::rules::test_util::two_blobs;

    #[test]
    fn settings_refuse_a_negative_radius_and_no_steps() {
        let ok = AdversarialTraining { eps: 0.1, steps: 3 };
        assert_eq!(ok.check("e", "s").unwrap(), ok);
        // Clean training needs no step.
        assert!(AdversarialTraining { eps: 0.0, steps: 0 }.check("e", "s").is_ok());
        for (eps, steps, flag) in [(-0.1, 10, "e"), (f32::NAN, 10, "e"), (f32::INFINITY, 10, "e"), (0.1, 0, "s")] {
            let err = AdversarialTraining { eps, steps }.check("e", "s").unwrap_err();
            assert!(matches!(&err, CoreError::InvalidParam { name, .. } if name == flag), "{eps} {steps}: {err}");
            assert_eq!(err.to_string().lines().count(), 1, "{err}");
        }
    }

    /// PGD examples stay in the ε-ball around `x` and in `[0, 1]` (also where `x` sits at a
    /// bound), differ from `x`, and raise the loss; at `ε = 0` there are none and no number is drawn.
    #[test]
    fn pgd_examples_stay_in_the_ball_and_raise_the_loss() {
        let b = ReferenceBackend;
        let net = BpNet::init(&b, BpParams { hidden: vec![6], ..Default::default() }.check().unwrap(), 16, 2, 3);
        let (mut x, labels) = two_blobs(8, 16, 5);
        for j in 0..16 {
            x.set(0, j, 0.0);
            x.set(1, j, 1.0);
        }
        let eps = 0.1;
        let adv = pgd_examples(&net, &x, &labels, eps, 5, &mut ChaCha8Rng::seed_from_u64(1));
        assert!(adv.max_abs_diff(&x) <= eps + 1e-6);
        assert!(adv.max_abs_diff(&x) > 0.5 * eps, "the examples move");
        assert!(adv.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
        let loss = |m: &Matrix| net.loss_and_input_gradient(m, &labels).0.iter().sum::<f32>();
        assert!(loss(&adv) > loss(&x), "PGD raises the loss: {} → {}", loss(&x), loss(&adv));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let clean = AdversarialTraining { eps: 0.0, steps: DEFAULT_STEPS };
        assert!(clean.examples(&net, &x, &labels, &mut rng).is_none());
        assert_eq!(rng, ChaCha8Rng::seed_from_u64(1), "clean training draws nothing");
    }
}
