//! Hyper-parameters of the `bio` rule, validated before any work starts, and their settings as the
//! rule registry declares them ([`BIO_OPTIONS`]): a setting is one field of [`BioParams`] plus one
//! declaration there. In the manner of linfa's `ParamGuard`: users fill the plain struct and
//! `check()` turns it into a [`BioConfig`] or a [`CoreError::InvalidParam`] naming the offending
//! setting by its flag (`hebbian-rate` for the field `hebbian_rate`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CoreError;
use crate::rules::checks::check_hidden;
use crate::rules::{OptionKind, RuleOption, choice_name, number_setting, params_mut, params_ref};

/// How lateral inhibition selects the active units of a hidden layer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Competition {
    /// k-winners-take-all: the threshold is each input's (k+1)-th largest drive, `k = ⌈ρN⌉`.
    /// Sparsity is fixed by construction.
    KWinners,
    /// A pooled inhibitory unit sets the threshold from the layer's own activity,
    /// `θ = mean(u) + γ·std(u)`. The active fraction is an outcome that can be measured.
    Inhibitory {
        /// Inhibitory gain `γ` (in standard deviations of the drive).
        gain: f32,
    },
}

/// Which "total" of a neuron's synapses synaptic scaling holds constant (and in which norm the
/// Hebbian rule compares weights with the presynaptic pattern).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalingNorm {
    /// `Σ|w|`: the total synaptic weight; the drive is then the mean input over the synapses' support.
    L1,
    /// `√Σw²`: the drive `W x̂` is then `S·cos(w, x)`, a similarity (Oja-style normalization).
    L2,
}

/// The readout's plasticity rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadoutRule {
    /// Exponentiated-gradient delta rule: `V ← V·exp(η·sign(V)·(t − p)·h̃)`, local and sign-preserving.
    DeltaEg,
    /// Node perturbation: the same multiplicative form, with the error replaced by a reward-based
    /// estimate from random perturbations of the class units (gradient-free).
    Perturbation,
    /// Taught class only (issue 30): the error reaches the taught class's unit alone,
    /// `E_bc = t_bc·(1 − p_bc)`, so a class absent from the input is never pushed down, and the
    /// biases stay fixed (biases learned from the classes present would favour them).
    Taught,
    /// The class assemblies' readout (issue 30; needs [`BioParams::class_assemblies`]): fixed by
    /// construction, `V_cj = [j mod C = c]` and no bias, so class `c`'s unit sums its assembly's
    /// share of the code and nothing in the readout learns or forgets.
    Assembly,
}

/// Switches for each mechanism of the `bio` rule, so ablations can turn one off at a time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mechanisms {
    /// Multiplicative (log-space) Hebbian update; when off, the same update is applied additively
    /// (which can then drive weights through zero).
    pub multiplicative: bool,
    /// Homeostatic excitability (bias tracks firing rate toward ρ).
    pub homeostasis: bool,
    /// Structural plasticity (pruning of synapses that shrink below a threshold).
    pub structural: bool,
    /// Multiplicative synaptic scaling of each neuron's total weight.
    pub synaptic_scaling: bool,
    /// Lateral inhibition; when off, every unit with positive drive is active (ReLU).
    pub competition: bool,
    /// Sign-preserving (multiplicative) readout; when off, the readout uses the additive delta rule.
    pub sign_preserving_readout: bool,
}

impl Default for Mechanisms {
    fn default() -> Self {
        Self {
            multiplicative: true,
            homeostasis: true,
            structural: true,
            synaptic_scaling: true,
            competition: true,
            sign_preserving_readout: true,
        }
    }
}

/// How the readout's weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitSign {
    /// All weights positive (excitatory).
    Positive,
    /// Random sign per synapse (no Dale's law at the start), for emergence experiments.
    Mixed,
}

/// Unchecked hyper-parameters of the `bio` rule. Call [`BioParams::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BioParams {
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Target fraction of active units per input, ρ.
    pub active_fraction: f32,
    /// Lateral inhibition.
    pub competition: Competition,
    /// Gain `g` of feed-forward inhibition: `x̃ = x̂ − g·mean(x̂)` reaches the excitatory synapses
    /// (0 = none).
    pub feedforward_inhibition: f32,
    /// Hebbian learning rate η (per expected win).
    pub hebbian_rate: f32,
    /// Rate schedule: when set, the Hebbian rate moves geometrically from `hebbian_rate` in the first
    /// plastic epoch to this rate in the last one (below `hebbian_rate`: high early, low late; above
    /// it: the reverse), instead of the default linear decay. Readout and pruning are unaffected.
    #[serde(default)]
    pub hebbian_rate_end: Option<f32>,
    /// Two populations in one layer: the first `round(f·N)` units of every hidden layer learn at
    /// [`BioParams::fast_hebbian_rate`] instead of `hebbian_rate` (0 = one population). Both share
    /// the competition and the readout; only the speed of their Hebbian change differs.
    #[serde(default)]
    pub fast_fraction: f32,
    /// Hebbian rate of the fast population (used only when `fast_fraction > 0`).
    #[serde(default)]
    pub fast_hebbian_rate: f32,
    /// Three-factor learning: when set to `κ`, each sample's Hebbian change in every hidden layer is
    /// multiplied by a global, neuromodulator-like reward signal `m_b`, `1` when the readout classified
    /// the sample correctly and `−κ` when it did not (the winners for a misclassified input move away
    /// from it); `κ = 0` learns from correctly classified samples only. Off (`None`): `m_b = 1`.
    #[serde(default)]
    pub reward_modulation: Option<f32>,
    /// Readout-gated learning in the last hidden layer: when set to `κ`, winner `j`'s Hebbian change
    /// for sample `b` is multiplied by `1` when its readout synapse onto the sample's true class is
    /// above its mean over the classes (the unit votes for that class) and by `−κ` when it is not.
    /// A retrograde signal from the taught class unit to the units that synapse onto it, one per
    /// unit and sample: not global like [`BioParams::reward_modulation`]. Off (`None`) by default.
    #[serde(default)]
    pub readout_gating: Option<f32>,
    /// Metaplasticity (synaptic consolidation per unit): when set to `τ`, hidden unit `j`'s Hebbian
    /// rate is `η/(1 + A_j/τ)`, `A_j` the number of inputs it has won over its whole life (every
    /// batch it learned in), so a unit that has coded many inputs becomes hard to change while a
    /// rarely used one stays plastic. Local (the unit's own history), needs no task identity. Off
    /// (`None`) by default.
    #[serde(default)]
    pub metaplasticity: Option<f32>,
    /// With [`BioParams::metaplasticity`]: the unit's homeostatic excitability change is scaled by the
    /// same factor `1/(1 + A_j/τ)`, so a consolidated unit also keeps its threshold while silent units
    /// stay fully homeostatic (they, not the consolidated ones, are recruited by new inputs).
    #[serde(default)]
    pub metaplastic_homeostasis: bool,
    /// Class assemblies (label-gated competition) in the last hidden layer: unit `j` belongs to class
    /// `j mod C` by construction, and during training a labelled sample's Hebbian change reaches
    /// only its class's assembly, whose `k_a = max(1, round(ρ·N/C))` most driven units win (k-WTA
    /// within the assembly, on the same drive). The forward pass, and so the code at test time, is
    /// unchanged: every unit competes with every other. A class's inputs never move another class's
    /// units. Off by default.
    #[serde(default)]
    pub class_assemblies: bool,
    /// Exponent `q` of the plasticity signal `r = (y / max y)^q`: how strongly the most active winners
    /// dominate learning (1 = in proportion to activity).
    pub hebbian_exponent: f32,
    /// Strength `Δ` of anti-Hebbian plasticity of the strongest loser (the unit at the inhibition
    /// threshold), which moves away from the input; keeps prototypes from collapsing together.
    pub anti_hebbian: f32,
    /// How many losers below the threshold the anti-Hebbian push reaches: ranks `k+1 … k+m` (1 = the
    /// strongest loser alone; `k` = the near-losers as a group, as wide as the winners).
    #[serde(default = "one_rank")]
    pub anti_hebbian_ranks: usize,
    /// Exponent `n` of the response the readout sees, `yⁿ` (a rectified polynomial, as in
    /// Krotov–Hopfield's dense associative memory): 1 = the activity itself; larger `n` lets the
    /// best-matching winners dominate the code (a prototype readout); the readout's semi-saturation
    /// constant becomes `σⁿ`. Hidden-layer learning is unchanged.
    #[serde(default = "unit_power")]
    pub response_power: f32,
    /// Consolidation: in the last this-many epochs (when training is longer than that) the hidden
    /// layers stop changing (no Hebbian, homeostatic or structural plasticity) and only the readout
    /// learns, on settled features.
    pub consolidation_epochs: usize,
    /// Greedy layer-wise training: the plastic epochs are split into one block per hidden layer, in
    /// order; in its block a layer learns (with its own learning-rate decay) and the others are
    /// frozen. Off: every layer learns in every plastic epoch.
    pub layerwise: bool,
    /// Homeostatic rate η_h of the bias.
    pub homeostasis_rate: f32,
    /// Time constant of the running firing rate, as the weight of the newest batch (0..1].
    pub rate_smoothing: f32,
    /// Total synaptic weight each neuron keeps (synaptic scaling target `S`).
    pub total_weight: f32,
    /// The norm in which the total is measured.
    pub scaling_norm: ScalingNorm,
    /// Structural plasticity: a synapse is removed when its weight falls below this fraction of
    /// the neuron's mean weight.
    pub prune_below: f32,
    /// Structural plasticity: probability per epoch that a removed synapse regrows.
    pub regrow_probability: f32,
    /// Each unit normalizes the presynaptic pattern over its own present synapses,
    /// `p_bj = x_b⊙m_j / ‖x_b⊙m_j‖`, instead of over every input, `x_b/‖x_b‖`. Off (the default), a
    /// unit with few synapses (a receptive field, or after pruning) is pulled toward the share of the
    /// pattern it sees, which sums to less than its normalized weights do, and the difference acts as
    /// a pull toward uniform weights; on, its learned weights converge to its own view of the input.
    #[serde(default)]
    pub pattern_per_unit: bool,
    /// Readout learning rate.
    pub readout_rate: f32,
    /// Readout plasticity rule.
    pub readout_rule: ReadoutRule,
    /// Standard deviation of the node-perturbation noise (only for [`ReadoutRule::Perturbation`]).
    pub perturbation_sigma: f32,
    /// Initial sign of the readout weights.
    pub readout_init: InitSign,
    /// Localized receptive fields: when set to `p`, each first-layer neuron starts with synapses only
    /// from a random `p×p` window of the (square) input image; structural plasticity works within it.
    pub receptive_field: Option<usize>,
    /// Initial sign of the hidden weights (Positive by default; Mixed for emergence experiments).
    pub hidden_init: InitSign,
    /// Initial weight magnitudes are uniform on `[1 − s, 1 + s]·c`: `s = 0.5` by default; `s = 1`
    /// (uniform from 0) gives `ln w` a long left tail (skew ≈ −2), a start far from lognormal.
    pub init_spread: f32,
    /// Semi-saturation constant of the readout's divisive normalization.
    pub normalization_sigma: f32,
    /// Mechanism switches for ablations.
    pub mechanisms: Mechanisms,
}

impl Default for BioParams {
    fn default() -> Self {
        Self {
            hidden: vec![2000],
            active_fraction: 0.05,
            competition: Competition::KWinners,
            feedforward_inhibition: 0.0,
            hebbian_rate: 0.0003,
            hebbian_rate_end: None,
            reward_modulation: None,
            readout_gating: None,
            metaplasticity: None,
            metaplastic_homeostasis: false,
            class_assemblies: false,
            fast_fraction: 0.0,
            fast_hebbian_rate: 0.0,
            hebbian_exponent: 1.0,
            anti_hebbian: 0.0,
            anti_hebbian_ranks: 1,
            response_power: 1.0,
            consolidation_epochs: 1,
            layerwise: false,
            homeostasis_rate: 0.1,
            rate_smoothing: 0.5,
            total_weight: 1.0,
            scaling_norm: ScalingNorm::L2,
            prune_below: 0.02,
            regrow_probability: 0.0,
            pattern_per_unit: false,
            readout_rate: 5.0,
            readout_rule: ReadoutRule::DeltaEg,
            perturbation_sigma: 0.1,
            readout_init: InitSign::Positive,
            hidden_init: InitSign::Positive,
            init_spread: 0.5,
            receptive_field: None,
            normalization_sigma: 1e-3,
            mechanisms: Mechanisms::default(),
        }
    }
}

// Defaults of the fields added after format 3's first files, so those files still load.
fn one_rank() -> usize {
    1
}
fn unit_power() -> f32 {
    1.0
}

crate::option_choices!(ScalingNorm { ScalingNorm::L1 => "l1", ScalingNorm::L2 => "l2" });
crate::option_choices!(ReadoutRule {
    ReadoutRule::DeltaEg => "delta",
    ReadoutRule::Perturbation => "perturbation",
    ReadoutRule::Taught => "taught",
    ReadoutRule::Assembly => "assembly",
});
crate::option_choices!(InitSign { InitSign::Positive => "positive", InitSign::Mixed => "mixed" });

/// Gain γ of the inhibitory unit when `--competition inhibitory` is chosen without
/// `--inhibition-gain`: chosen on validation accuracy among 1.0-2.0 with at most 5% of units
/// active (docs/RESULTS.md).
pub const DEFAULT_INHIBITION_GAIN: f32 = 1.5;

/// The mechanisms `--ablate` names, in the order of [`Mechanisms`]' switches.
const MECHANISMS: [&str; 6] = ["competition", "multiplicative", "homeostasis", "structural", "scaling", "sign-readout"];

impl Mechanisms {
    /// The switch of the mechanism `--ablate` calls `name`.
    fn switch(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "competition" => &mut self.competition,
            "multiplicative" => &mut self.multiplicative,
            "homeostasis" => &mut self.homeostasis,
            "structural" => &mut self.structural,
            "scaling" => &mut self.synaptic_scaling,
            "sign-readout" => &mut self.sign_preserving_readout,
            _ => return None,
        })
    }

    /// The names of the mechanisms switched off.
    fn off(&self) -> Vec<&'static str> {
        let mut probe = *self;
        MECHANISMS.into_iter().filter(|name| probe.switch(name).is_some_and(|on| !*on)).collect()
    }
}

/// The settings of the `bio` rule, in the order they are applied and listed in `--help`.
pub const BIO_OPTIONS: &[RuleOption] = &[
    crate::rule_option!(BioParams, "active-fraction", active_fraction, "Target fraction of active hidden units, ρ"),
    RuleOption {
        flag: "competition",
        field: "competition",
        help: "Lateral inhibition: kwta (k-winners-take-all, sparsity fixed by construction) or inhibitory (threshold \
               set by a pooled inhibitory unit, sparsity is an outcome)",
        kind: OptionKind::Choice(&["kwta", "inhibitory"]),
        get: |p| match params_ref::<BioParams>(p).competition {
            Competition::KWinners => "kwta".into(),
            Competition::Inhibitory { .. } => "inhibitory".into(),
        },
        set: |p, v| {
            let p = params_mut::<BioParams>(p);
            p.competition = match (choice_name(v)?.as_str(), p.competition) {
                ("kwta", _) => Competition::KWinners,
                ("inhibitory", Competition::Inhibitory { gain }) => Competition::Inhibitory { gain },
                ("inhibitory", _) => Competition::Inhibitory { gain: DEFAULT_INHIBITION_GAIN },
                _ => return Err("expected one of kwta, inhibitory".into()),
            };
            Ok(())
        },
    },
    RuleOption {
        flag: "inhibition-gain",
        field: "competition",
        help: "Gain γ of the inhibitory unit, with --competition inhibitory (default 1.5, chosen on validation \
               accuracy among 1.0-2.0 with at most 5% of units active: docs/RESULTS.md)",
        kind: OptionKind::Number,
        get: |p| match params_ref::<BioParams>(p).competition {
            Competition::Inhibitory { gain } => number_setting(gain),
            Competition::KWinners => Value::Null,
        },
        set: |p, v| match &mut params_mut::<BioParams>(p).competition {
            Competition::Inhibitory { gain } => {
                *gain = crate::rules::OptionValue::from_setting(v)?;
                Ok(())
            }
            Competition::KWinners => Err("it applies with `--competition inhibitory` only".into()),
        },
    },
    crate::rule_option!(BioParams, "hebbian-rate", hebbian_rate, "Hebbian learning rate η"),
    crate::rule_option!(
        BioParams,
        "hebbian-rate-end",
        hebbian_rate_end,
        "Rate schedule: the Hebbian rate moves geometrically from --hebbian-rate in the first epoch to this rate in \
         the last plastic one (lower: high early, low late; higher: the reverse) instead of decaying linearly"
    ),
    crate::rule_option!(
        BioParams,
        "reward-modulation",
        reward_modulation,
        "Three-factor learning: each sample's Hebbian change is multiplied by a global reward signal, 1 when the \
         readout got the sample right and −κ when it did not (0: learn from correct samples only)"
    ),
    crate::rule_option!(
        BioParams,
        "readout-gating",
        readout_gating,
        "Readout-gated learning in the last hidden layer: a winner learns (×1) from a sample when its readout synapse \
         onto the true class is above its mean, and unlearns (×−κ) when not"
    ),
    crate::rule_option!(
        BioParams,
        "metaplasticity",
        metaplasticity,
        "Metaplasticity τ: each hidden unit's Hebbian rate is η/(1 + A/τ), A the inputs it has won in its life, so \
         much-used units consolidate (default: off)"
    ),
    crate::rule_option!(
        BioParams,
        "metaplastic-homeostasis",
        metaplastic_homeostasis,
        "With --metaplasticity: each unit's homeostatic excitability change is scaled by the same factor, so \
         consolidated units keep their threshold and silent ones are recruited"
    ),
    crate::rule_option!(
        BioParams,
        "class-assemblies",
        class_assemblies,
        "Label-gated competition in the last hidden layer: unit j belongs to class j mod C, and a training sample's \
         Hebbian change reaches only its class's units, of which the round(ρN/C) most driven learn"
    ),
    crate::rule_option!(
        BioParams,
        "fast-fraction",
        fast_fraction,
        "Two populations in one layer: this fraction of each hidden layer's units (the first ones) learns at \
         --fast-rate, the rest at --hebbian-rate"
    ),
    crate::rule_option!(
        BioParams,
        "fast-rate",
        fast_hebbian_rate,
        "Hebbian rate of the fast population (with --fast-fraction)"
    ),
    crate::rule_option!(BioParams, "homeostasis-rate", homeostasis_rate, "Homeostatic rate"),
    crate::rule_option!(BioParams, "readout-rate", readout_rate, "Readout learning rate"),
    crate::rule_option!(
        BioParams,
        "readout",
        readout_rule,
        "Readout rule: delta (exponentiated-gradient delta rule), perturbation (node perturbation, gradient-free) or \
         taught (only the taught class's unit learns, t·(1 − p); absent classes are never pushed down) or assembly \
         (fixed: each class unit sums its class's assembly, with --class-assemblies)"
    ),
    crate::rule_option!(
        BioParams,
        "perturbation-sigma",
        perturbation_sigma,
        "Standard deviation of the node-perturbation noise (with --readout perturbation)"
    ),
    crate::rule_option!(
        BioParams,
        "prune-below",
        prune_below,
        "Prune a synapse below this fraction of its neuron's mean weight"
    ),
    crate::rule_option!(BioParams, "regrow", regrow_probability, "Probability per epoch that a pruned synapse regrows"),
    crate::rule_option!(BioParams, "readout-init", readout_init, "Initial sign of the readout weights"),
    crate::rule_option!(BioParams, "hidden-init", hidden_init, "Initial sign of the hidden weights"),
    crate::rule_option!(
        BioParams,
        "hebbian-exponent",
        hebbian_exponent,
        "Exponent q of the plasticity signal (y/max y)^q (1 = in proportion to activity)"
    ),
    crate::rule_option!(
        BioParams,
        "feedforward-inhibition",
        feedforward_inhibition,
        "Gain g of feed-forward inhibition, x̃ = x̂ − g·mean(x̂) (0 = off)"
    ),
    crate::rule_option!(
        BioParams,
        "anti-hebbian",
        anti_hebbian,
        "Anti-Hebbian strength of the strongest loser (0 = off)"
    ),
    crate::rule_option!(
        BioParams,
        "anti-hebbian-ranks",
        anti_hebbian_ranks,
        "How many losers below the threshold the anti-Hebbian push reaches (ranks k+1…k+m; 1 = the strongest loser alone)"
    ),
    crate::rule_option!(
        BioParams,
        "response-power",
        response_power,
        "Exponent n of the response the readout sees, yⁿ (1 = the activity; larger n: a prototype readout). Learning \
         is unchanged"
    ),
    crate::rule_option!(
        BioParams,
        "rate-smoothing",
        rate_smoothing,
        "Weight of the newest batch in each unit's running firing rate (0..1]"
    ),
    crate::rule_option!(
        BioParams,
        "scaling-norm",
        scaling_norm,
        "Norm in which synaptic scaling holds each neuron's total weight: l1 (Σ|w|) or l2 (√Σw², drive = cosine \
         similarity)"
    ),
    crate::rule_option!(
        BioParams,
        "receptive-field",
        receptive_field,
        "Localized receptive fields: first-layer units start with a random P×P window of the image (default: off)"
    ),
    crate::rule_option!(
        BioParams,
        "consolidation-epochs",
        consolidation_epochs,
        "Final epochs in which only the readout learns (hidden layers frozen)"
    ),
    crate::rule_option!(
        BioParams,
        "layerwise",
        layerwise,
        "Greedy layer-wise training: the plastic epochs split into one block per hidden layer, in order; only that \
         layer learns in its block"
    ),
    crate::rule_option!(
        BioParams,
        "pattern-per-unit",
        pattern_per_unit,
        "Each unit normalizes the input pattern over its own synapses, not over every input"
    ),
    crate::rule_option!(
        BioParams,
        "init-spread",
        init_spread,
        "Initial magnitudes uniform on [1−s, 1+s]·c (1 starts far from lognormal)"
    ),
    RuleOption {
        flag: "ablate",
        field: "mechanisms",
        help: "Mechanisms to switch off, comma-separated: competition (units become plain ReLUs), multiplicative \
               (the Hebbian update becomes additive), homeostasis, structural (pruning), scaling (synaptic scaling), \
               sign-readout (the readout becomes the additive delta rule)",
        kind: OptionKind::List(&MECHANISMS),
        get: |p| Value::from(params_ref::<BioParams>(p).mechanisms.off()),
        set: |p, v| {
            let names = match v {
                Value::Array(items) => items.iter().map(choice_name).collect::<Result<Vec<_>, _>>()?,
                one => vec![choice_name(one)?],
            };
            let mut mechanisms = Mechanisms::default();
            for name in names {
                *mechanisms.switch(&name).ok_or_else(|| format!("expected names among {}", MECHANISMS.join(", ")))? =
                    false;
            }
            params_mut::<BioParams>(p).mechanisms = mechanisms;
            Ok(())
        },
    },
];

/// Validated hyper-parameters of the `bio` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BioConfig(BioParams);

impl std::ops::Deref for BioConfig {
    type Target = BioParams;
    fn deref(&self) -> &BioParams {
        &self.0
    }
}

impl BioConfig {
    /// Number of fast units (the first ones) in a layer of width `n`; see [`BioParams::fast_fraction`].
    pub fn fast_units(&self, n: usize) -> usize {
        ((self.fast_fraction * n as f32).round() as usize).min(n)
    }

    /// Number of winners `k = max(1, round(ρ·N))` for a layer of width `n`.
    pub fn winners(&self, n: usize) -> usize {
        winners_at(self.active_fraction, n)
    }
}

/// Number of winners of k-WTA at density `ρ` in a layer of width `n`: `round(ρ·n)`, at least 1 and
/// at most `n − 1` (so that a (k+1)-th drive, the threshold, exists).
pub fn winners_at(density: f32, n: usize) -> usize {
    ((density * n as f32).round() as usize).clamp(1, n.saturating_sub(1).max(1))
}

fn check_rate(name: &'static str, v: f32) -> Result<(), CoreError> {
    if !v.is_finite() || v < 0.0 {
        return Err(CoreError::invalid(name, format!("must be a finite number ≥ 0, got {v}")));
    }
    Ok(())
}

impl BioParams {
    /// Validates every field, naming the first bad one.
    pub fn check(self) -> Result<BioConfig, CoreError> {
        check_hidden(&self.hidden)?;
        if !(self.active_fraction > 0.0 && self.active_fraction < 1.0) {
            return Err(CoreError::invalid(
                "active-fraction",
                format!("must be in (0, 1), got {}", self.active_fraction),
            ));
        }
        for &w in &self.hidden {
            let k = (self.active_fraction * w as f32).round() as usize;
            if k >= w {
                return Err(CoreError::invalid("active-fraction", format!("k = {k} winners must be below width {w}")));
            }
        }
        if let Competition::Inhibitory { gain } = self.competition
            && !gain.is_finite()
        {
            return Err(CoreError::invalid("inhibition-gain", format!("must be finite, got {gain}")));
        }
        check_rate("hebbian-rate", self.hebbian_rate)?;
        if let Some(end) = self.hebbian_rate_end {
            check_rate("hebbian-rate-end", end)?;
            if end == 0.0 || self.hebbian_rate == 0.0 {
                // A geometric schedule needs two positive ends.
                return Err(CoreError::invalid("hebbian-rate-end", "needs positive start and end rates"));
            }
        }
        if !(0.0..=1.0).contains(&self.fast_fraction) {
            return Err(CoreError::invalid("fast-fraction", format!("must be in [0, 1], got {}", self.fast_fraction)));
        }
        check_rate("fast-rate", self.fast_hebbian_rate)?;
        if (self.fast_fraction > 0.0) != (self.fast_hebbian_rate > 0.0) {
            return Err(CoreError::invalid(
                "fast-fraction",
                "two populations need both `fast-fraction` and `fast-rate` (both > 0, or both 0)",
            ));
        }
        if self.fast_fraction > 0.0 && self.hebbian_rate == 0.0 {
            // The fast units' rate is applied as a multiple of the slow one.
            return Err(CoreError::invalid("fast-fraction", "needs a positive hebbian-rate for the slow population"));
        }
        if let Some(kappa) = self.reward_modulation {
            check_rate("reward-modulation", kappa)?;
        }
        if let Some(kappa) = self.readout_gating {
            check_rate("readout-gating", kappa)?;
        }
        if let Some(tau) = self.metaplasticity
            && !(tau.is_finite() && tau > 0.0)
        {
            return Err(CoreError::invalid("metaplasticity", format!("τ must be a finite number > 0, got {tau}")));
        }
        if self.metaplastic_homeostasis && self.metaplasticity.is_none() {
            return Err(CoreError::invalid("metaplastic-homeostasis", "needs `metaplasticity` (its τ)"));
        }
        check_rate("feedforward-inhibition", self.feedforward_inhibition)?;
        check_rate("homeostasis-rate", self.homeostasis_rate)?;
        check_rate("anti-hebbian", self.anti_hebbian)?;
        if self.anti_hebbian_ranks == 0 {
            return Err(CoreError::invalid("anti-hebbian-ranks", "must be ≥ 1"));
        }
        if self.anti_hebbian_ranks > 1 && self.competition != Competition::KWinners {
            return Err(CoreError::invalid(
                "anti-hebbian-ranks",
                "ranks below the threshold exist only under k-winners-take-all (`--competition kwta`)",
            ));
        }
        if !(self.response_power.is_finite() && self.response_power >= 1.0) {
            return Err(CoreError::invalid(
                "response-power",
                format!("must be a finite number ≥ 1, got {}", self.response_power),
            ));
        }
        if !(self.hebbian_exponent.is_finite() && self.hebbian_exponent > 0.0) {
            return Err(CoreError::invalid("hebbian-exponent", format!("must be > 0, got {}", self.hebbian_exponent)));
        }
        check_rate("readout-rate", self.readout_rate)?;
        check_rate("prune-below", self.prune_below)?;
        check_rate("perturbation-sigma", self.perturbation_sigma)?;
        if !(self.rate_smoothing > 0.0 && self.rate_smoothing <= 1.0) {
            return Err(CoreError::invalid(
                "rate-smoothing",
                format!("must be in (0, 1], got {}", self.rate_smoothing),
            ));
        }
        if !(0.0..=1.0).contains(&self.init_spread) {
            return Err(CoreError::invalid("init-spread", format!("must be in [0, 1], got {}", self.init_spread)));
        }
        if self.receptive_field == Some(0) {
            return Err(CoreError::invalid("receptive-field", "must be ≥ 1"));
        }
        if !(self.total_weight.is_finite() && self.total_weight > 0.0) {
            return Err(CoreError::invalid("total-weight", format!("must be > 0, got {}", self.total_weight)));
        }
        if !(0.0..=1.0).contains(&self.regrow_probability) {
            return Err(CoreError::invalid("regrow", format!("must be in [0, 1], got {}", self.regrow_probability)));
        }
        if self.prune_below >= 1.0 {
            return Err(CoreError::invalid("prune-below", "must be below 1 (the mean weight)"));
        }
        if !(self.normalization_sigma.is_finite() && self.normalization_sigma > 0.0) {
            return Err(CoreError::invalid("normalization-sigma", "must be > 0"));
        }
        if self.readout_rule == ReadoutRule::Assembly && !self.class_assemblies {
            return Err(CoreError::invalid("readout", "`assembly` needs `class-assemblies` (the assemblies it sums)"));
        }
        if self.readout_rule == ReadoutRule::Perturbation && self.perturbation_sigma <= 0.0 {
            return Err(CoreError::invalid("perturbation-sigma", "must be > 0 for the perturbation readout"));
        }
        Ok(BioConfig(self))
    }
}

/// Copies of each weight matrix the `bio` rule holds at its peak: weights, mask, and the Hebbian
/// step's `|W|`, normalized weights, `ΔlogW` and `exp(ΔlogW)`.
pub const BIO_COPIES_PER_WEIGHT: u64 = 6;
