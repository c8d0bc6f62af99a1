//! Population training (issue 29): `P` `bio` networks of one configuration, each with its own seed
//! (its initial weights) and its own batches, trained together in one process. Their tensors are
//! stacked ([`crate::backend::stack_members`]): row-wise and elementwise operations run once for
//! every member, and the products, the column and total reductions and the plasticity step run
//! through the backend's `*_stacked` operations (one strided batched GEMM on CUDA). The step is
//! the rule's own ([`BioRule`]'s, with `members = P`), so there is one definition of it.
//!
//! Each member ends with exactly the weights of a single run with its seed and its batches on the
//! CPU backend (tested: `bio-cpu`'s `tests/population.rs`), and within the conformance tolerance on
//! backends whose stacked product rounds differently (cuBLAS's batched kernels).
//!
//! What a member would draw from the trainer's random stream, and the mechanisms that keep
//! per-unit state on the host or products with the readout, are refused (one clear error naming
//! the option): synapse regrowth, node perturbation, class assemblies, metaplasticity, readout
//! gating and per-unit patterns.

use super::model::BioNet;
use super::params::{BioConfig, ReadoutRule};
use super::rule::BioRule;
use crate::backend::Backend;
use crate::error::CoreError;
use crate::model::Classifier;
use crate::rules::{BatchReport, LearningRule, RuleState, SavedModel};
use crate::tensor::Matrix;

/// `P` `bio` networks trained together; see the module's documentation.
#[derive(Clone, Debug)]
pub struct BioPopulation<B: Backend> {
    rule: BioRule,
    net: BioNet<B>,
    seeds: Vec<u64>,
}

impl<B: Backend> BioPopulation<B> {
    /// One member per seed, each initialized as the single run with that seed initializes its
    /// network. Fails (naming the option) for a configuration that populations do not support,
    /// and for an empty list of seeds.
    pub fn new(
        backend: &B,
        config: BioConfig,
        input_dim: usize,
        classes: usize,
        seeds: &[u64],
    ) -> Result<Self, CoreError> {
        if seeds.is_empty() {
            return Err(CoreError::invalid("seeds", "a population needs at least one member"));
        }
        supported(&config)?;
        let nets: Vec<_> =
            seeds.iter().map(|&seed| BioNet::init(backend, config.clone(), input_dim, classes, seed)).collect();
        // The trainer's random stream is used only by the refused mechanisms, so one trainer
        // serves every member.
        let rule = BioRule::new(config, seeds[0]);
        Ok(Self { rule, net: BioNet::stack(&nets), seeds: seeds.to_vec() })
    }

    /// How many networks train together.
    pub fn members(&self) -> usize {
        self.seeds.len()
    }

    /// The members' seeds, in order.
    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    /// The schedule of epoch `epoch` of `epochs`, for every member ([`BioRule::start_epoch`]).
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize) {
        self.rule.start_epoch(epoch, epochs);
    }

    /// One step of every member, member `p` on `batches[p]` (its images and labels; every member's
    /// batch of one size), with one report per member. The images travel to the backend once, as
    /// one stack.
    pub fn train_batch(&mut self, batches: &[(Matrix, Vec<usize>)]) -> Result<Vec<BatchReport>, CoreError> {
        if batches.len() != self.members() {
            return Err(CoreError::Shape(format!(
                "{} batches for a population of {} members",
                batches.len(),
                self.members()
            )));
        }
        let (rows, cols) = batches[0].0.shape();
        let mut images = Vec::with_capacity(self.members() * rows * cols);
        let mut labels = Vec::with_capacity(self.members() * rows);
        for (p, (x, y)) in batches.iter().enumerate() {
            if x.shape() != (rows, cols) || y.len() != rows {
                return Err(CoreError::Shape(format!(
                    "member {p}'s batch has {}×{} images and {} labels; member 0's has {rows}×{cols} and {rows}",
                    x.rows(),
                    x.cols(),
                    y.len()
                )));
            }
            images.extend_from_slice(x.as_slice());
            labels.extend_from_slice(y);
        }
        let stack = Matrix::new(self.members() * rows, cols, images).expect("the stack has its shape");
        let x = self.net.backend().upload(&stack);
        self.rule.train_members(&mut self.net, &x, &labels)
    }

    /// Each member as a network alone, in the order of the seeds.
    pub fn networks(&self) -> Vec<BioNet<B>> {
        self.net.unstack()
    }

    /// Each member's checkpoint between two batches, exactly as its single run would save it at
    /// the same point: its model, and the trainer's state with the single run's own random stream
    /// (untouched: the supported mechanisms draw nothing). So a member can be resumed alone, and
    /// single runs at one point of one schedule can be resumed together ([`BioPopulation::resume`]).
    pub fn save_members(&self) -> Vec<(SavedModel, RuleState)> {
        self.net
            .unstack()
            .into_iter()
            .zip(&self.seeds)
            .map(|(net, &seed)| {
                let state = member_rule(&self.rule, seed).save_state(&net);
                (net.to_saved(), state)
            })
            .collect()
    }

    /// A population from its members' checkpoints ([`BioPopulation::save_members`], or single
    /// runs' checkpoints of this configuration), one per seed. Fails when a model does not fit the
    /// configuration, or when the members are not at the same point of the schedule.
    pub fn resume(
        backend: &B,
        config: BioConfig,
        input_dim: usize,
        classes: usize,
        seeds: &[u64],
        saved: &[(SavedModel, RuleState)],
    ) -> Result<Self, CoreError> {
        if seeds.is_empty() {
            return Err(CoreError::invalid("seeds", "a population needs at least one member"));
        }
        supported(&config)?;
        let mut shared = BioRule::new(config, seeds[0]);
        if saved.len() != seeds.len() {
            return Err(CoreError::Shape(format!("{} checkpoints for {} seeds", saved.len(), seeds.len())));
        }
        let mut nets = Vec::with_capacity(seeds.len());
        let mut schedule = None;
        for (p, ((model, state), &seed)) in saved.iter().zip(seeds).enumerate() {
            let mut rule = member_rule(&shared, seed);
            let net = rule.model_from_params(backend, input_dim, classes, &model.params)?;
            rule.restore_state(&net, state.clone())?;
            let point =
                (rule.schedule.to_bits(), rule.hebbian_schedule.to_bits(), rule.plastic_layers, rule.regrow_pending);
            if *schedule.get_or_insert(point) != point {
                return Err(CoreError::invalid(
                    "resume",
                    format!("member {p} (seed {seed}) is at another point of the schedule than member 0"),
                ));
            }
            if p == 0 {
                shared = rule;
            }
            nets.push(net);
        }
        Ok(Self { rule: shared, net: BioNet::stack(&nets), seeds: seeds.to_vec() })
    }
}

/// The trainer of the single run with `seed`, at `shared`'s point of the schedule.
fn member_rule(shared: &BioRule, seed: u64) -> BioRule {
    let mut rule = BioRule::new(shared.config.clone(), seed);
    rule.schedule = shared.schedule;
    rule.hebbian_schedule = shared.hebbian_schedule;
    rule.plastic_layers = shared.plastic_layers;
    rule.regrow_pending = shared.regrow_pending;
    rule
}

/// Refuses what a population cannot run member by member: see the module's documentation.
fn supported(config: &BioConfig) -> Result<(), CoreError> {
    let refuse = |option: &'static str, why: &str| {
        Err(CoreError::invalid(
            option,
            format!("is not supported by population training ({why}); train these runs one by one"),
        ))
    };
    if config.regrow_probability > 0.0 {
        return refuse("regrow", "regrowth draws from each run's own random stream");
    }
    match config.readout_rule {
        ReadoutRule::Perturbation => {
            return refuse("readout-rule", "node perturbation draws from each run's own random stream");
        }
        ReadoutRule::Assembly => return refuse("readout-rule", "the assembly readout needs class assemblies"),
        ReadoutRule::DeltaEg | ReadoutRule::Taught => {}
    }
    if config.class_assemblies {
        return refuse("class-assemblies", "label-gated competition is not stacked");
    }
    if config.metaplasticity.is_some() {
        return refuse("metaplasticity", "each unit's lifetime wins are kept on the host per run");
    }
    if config.readout_gating.is_some() {
        return refuse("readout-gating", "the readout's votes are not stacked");
    }
    if config.pattern_per_unit {
        return refuse("pattern-per-unit", "the product with the mask is not stacked");
    }
    Ok(())
}
