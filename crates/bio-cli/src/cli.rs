//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::backend::BackendChoice;

/// Train, compare, attack and inspect networks trained by a biologically inspired rule and by backprop.
#[derive(Debug, Parser)]
#[command(name = "bio", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train `bio` and `bp` side by side on real images and print the comparison.
    #[command(
        after_help = "Examples:\n  bio demo                      # full Fashion-MNIST if installed, else the embedded subset\n  bio demo --dataset embedded   # the 6000-image subset shipped in the binary\n  bio demo --json"
    )]
    Demo(DemoArgs),
    /// Train one network and write DIR/model.ckpt, DIR/config.json and DIR/metrics.json.
    #[command(
        after_help = "Examples:\n  bio train --rule bio --dataset fashion-mnist --hidden 2000 --epochs 5 --out runs/bio\n  bio train --rule bp --optimizer adam --lr 1e-3 --out runs/bp\n  bio train --rule bio --ablate homeostasis,structural --out runs/no-homeo\n  bio train --rule bio --classes 0-4 --out runs/bio-base   # base classes only, for few-shot\n  bio train --rule bio --validation 10000 --out runs/tune  # tune on 10000 held-out training images, not the test set"
    )]
    Train(TrainArgs),
    /// Evaluate a trained model.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Print a summary of a model's layers.
    #[command(
        after_help = "Examples:\n  bio inspect --model runs/bio\n  bio inspect --model runs/bio --out pics/bio   # also write receptive fields and histograms as PNG"
    )]
    Inspect(InspectArgs),
    /// Compare runs in one Markdown page with pictures (DIR/report.md).
    #[command(
        after_help = "Examples:\n  bio report runs/bio runs/bp --out report\n  bio report runs/* --out report --json"
    )]
    Report(ReportArgs),
    /// Export a model's weights to another format.
    #[command(after_help = "Example:\n  bio export --model runs/bio --format safetensors --out bio.safetensors")]
    Export(ExportArgs),
}

/// Evaluation subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Clean test accuracy and the confusion matrix.
    #[command(after_help = "Example:\n  bio eval accuracy --model runs/bio --json")]
    Accuracy(AccuracyArgs),
    /// Robust accuracy under adversarial attacks over a grid of radii (also saved to DIR/robustness.json).
    #[command(
        after_help = "Examples:\n  bio eval robustness --model runs/bio --attack pgd --eps 0,0.05,0.1\n  bio eval robustness --model runs/bio --attack pgd,square --limit 500   # with the gradient-masking check\n  bio eval robustness --model runs/bp --attack fgsm --plot bp-fgsm.png --json\n  bio eval robustness --model runs/bio --attack strongest --eps 0.05,0.1 --source runs/bp   # worst case per image"
    )]
    Robustness(RobustnessArgs),
    /// Few-shot accuracy: episodes on novel classes (episodic) or training from few labels (few-labels).
    #[command(
        after_help = "Examples:\n  bio train --rule bio --classes 0-4 --out runs/bio-base\n  bio eval fewshot --model runs/bio-base --ways 5 --shots 1,5\n  bio eval fewshot --protocol few-labels --rule bio --shots 1,5,10,50 --unlabelled --dataset embedded"
    )]
    Fewshot(FewshotArgs),
    /// Biological metrics per layer: sparseness, dead units, lognormal weights, Dale's principle (also saved to DIR/biology.json).
    #[command(
        after_help = "Examples:\n  bio eval metrics --model runs/bio\n  bio eval metrics --model runs/bp --limit 2000 --json"
    )]
    Metrics(MetricsArgs),
}

/// Where the data comes from.
#[derive(Clone, Debug, Args, Serialize, Deserialize)]
pub struct DataArgs {
    /// Dataset: fashion-mnist, mnist, kmnist, embedded, or a directory with the four IDX files.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Extra directory to search for datasets (before $BIO_DATA_DIR, the cache dir and /usr/share/datasets).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// The learning rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum RuleChoice {
    /// Competitive multiplicative Hebbian hidden layers with a local sign-preserving readout.
    Bio,
    /// Backpropagation (Adam or SGD-momentum).
    Bp,
}

/// Lateral inhibition of the `bio` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum CompetitionChoice {
    /// k-winners-take-all (sparsity fixed by construction).
    Kwta,
    /// Threshold set by a pooled inhibitory unit (sparsity is an outcome).
    Inhibitory,
}

/// Readout plasticity of the `bio` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum ReadoutChoice {
    /// Exponentiated-gradient delta rule.
    Delta,
    /// Node perturbation (gradient-free).
    Perturbation,
}

/// Sign of initial weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum SignChoice {
    /// All positive.
    Positive,
    /// Random sign per synapse.
    Mixed,
}

/// `--scaling-norm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum NormChoice {
    /// Σ|w|.
    L1,
    /// √Σw² (drive = cosine similarity).
    L2,
}

/// A mechanism of the `bio` rule that `--ablate` can switch off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Mechanism {
    /// Lateral inhibition (units become plain ReLUs).
    Competition,
    /// Multiplicative form of the Hebbian update (becomes additive).
    Multiplicative,
    /// Homeostatic excitability.
    Homeostasis,
    /// Structural plasticity (pruning).
    Structural,
    /// Synaptic scaling.
    Scaling,
    /// Sign-preserving readout (becomes additive delta rule).
    SignReadout,
}

/// `--optimizer` of the backprop baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum OptimizerChoice {
    /// Adam.
    Adam,
    /// SGD with momentum.
    Momentum,
}

/// Hyper-parameters of both rules (each flag applies to the rule named in its help).
#[derive(Clone, Debug, Args, Serialize, Deserialize)]
pub struct RuleArgs {
    /// Hidden layer widths, comma-separated (e.g. 2000 or 2000,2000).
    #[arg(long, value_delimiter = ',', default_value = "2000")]
    pub hidden: Vec<usize>,
    /// Epochs (default: 10 for both rules).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seed of initialization and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// [bio] Target fraction of active hidden units, ρ.
    #[arg(long)]
    pub active_fraction: Option<f32>,
    /// [bio] Lateral inhibition.
    #[arg(long, value_enum)]
    pub competition: Option<CompetitionChoice>,
    /// [bio] Gain γ of the inhibitory unit (with --competition inhibitory); 1.5 was chosen on
    /// validation accuracy among 1.0-2.0 with at most 5% of units active (docs/RESULTS.md).
    #[arg(long, default_value_t = 1.5)]
    pub inhibition_gain: f32,
    /// [bio] Hebbian learning rate.
    #[arg(long)]
    pub hebbian_rate: Option<f32>,
    /// [bio] Homeostatic rate.
    #[arg(long)]
    pub homeostasis_rate: Option<f32>,
    /// [bio] Readout learning rate.
    #[arg(long)]
    pub readout_rate: Option<f32>,
    /// [bio] Readout rule.
    #[arg(long, value_enum)]
    pub readout: Option<ReadoutChoice>,
    /// [bio] Prune a synapse below this fraction of its neuron's mean weight.
    #[arg(long)]
    pub prune_below: Option<f32>,
    /// [bio] Probability per epoch that a pruned synapse regrows.
    #[arg(long)]
    pub regrow: Option<f32>,
    /// [bio] Initial sign of the readout weights.
    #[arg(long, value_enum)]
    pub readout_init: Option<SignChoice>,
    /// [bio] Initial sign of the hidden weights.
    #[arg(long, value_enum)]
    pub hidden_init: Option<SignChoice>,
    /// [bio] Exponent q of the plasticity signal (y/max y)^q (1 = in proportion to activity).
    #[arg(long)]
    pub hebbian_exponent: Option<f32>,
    /// [bio] Gain g of feed-forward inhibition, x̃ = x̂ − g·mean(x̂) (0 = off).
    #[arg(long)]
    pub feedforward_inhibition: Option<f32>,
    /// [bio] Anti-Hebbian strength of the strongest loser (0 = off).
    #[arg(long)]
    pub anti_hebbian: Option<f32>,
    /// [bio] Weight of the newest batch in each unit's running firing rate (0..1].
    #[arg(long)]
    pub rate_smoothing: Option<f32>,
    /// [bio] Norm in which synaptic scaling holds each neuron's total weight.
    #[arg(long, value_enum)]
    pub scaling_norm: Option<NormChoice>,
    /// [bio] Localized receptive fields: first-layer units start with a random P×P window of the image.
    #[arg(long)]
    pub receptive_field: Option<usize>,
    /// [bio] Final epochs in which only the readout learns (hidden layers frozen).
    #[arg(long)]
    pub consolidation_epochs: Option<usize>,
    /// [bio] Greedy layer-wise training: the plastic epochs split into one block per hidden layer, in
    /// order; only that layer learns in its block.
    #[arg(long)]
    #[serde(default)]
    pub layerwise: bool,
    /// [bio] Initial magnitudes uniform on [1−s, 1+s]·c (default 0.5; 1 starts far from lognormal).
    #[arg(long)]
    #[serde(default)]
    pub init_spread: Option<f32>,
    /// [bio] Mechanisms to switch off, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub ablate: Vec<Mechanism>,
    /// [bp] Optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerChoice,
    /// [bp] Learning rate (default 1e-3 for Adam, 0.05 for momentum).
    #[arg(long)]
    pub lr: Option<f32>,
    /// [bp] Momentum coefficient.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
}

/// `bio train`.
#[derive(Clone, Debug, Args, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Learning rule.
    #[arg(long, value_enum, default_value = "bio")]
    pub rule: RuleChoice,
    /// Dataset.
    #[command(flatten)]
    pub data: DataArgs,
    /// Rule hyper-parameters.
    #[command(flatten)]
    pub rule_args: RuleArgs,
    /// Train on these classes only (e.g. 0-4 or 0,2,5-7); the others stay novel for few-shot tests.
    #[arg(long)]
    pub classes: Option<String>,
    /// Hold out N training images (after --classes) for validation accuracy, to tune on instead of
    /// the test set: class-stratified, and the same images in every run with the same N and data
    /// (independent of --seed); training uses the rest. 0 = off.
    #[arg(long, value_name = "N", default_value_t = 0)]
    #[serde(default)]
    pub validation: usize,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    #[serde(skip, default = "default_backend")]
    pub backend: BackendChoice,
    /// Output directory (created if missing); with --resume, the resumed directory.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the final metrics as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write a resumable checkpoint (DIR/state.ckpt) every N batches (default: at each epoch end only).
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Continue the run in DIR from its last checkpoint, with the flags in DIR/config.json (flags given
    /// here must agree with them); the result is bit-identical to an uninterrupted run.
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
}

fn default_backend() -> BackendChoice {
    BackendChoice::Cpu
}

/// `bio demo`.
#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// Dataset (falls back to the embedded subset when fashion-mnist is not installed).
    #[command(flatten)]
    pub data: DataArgs,
    /// Hidden width of both networks.
    #[arg(long, default_value_t = 2000)]
    pub hidden: usize,
    /// Epochs of the bio rule (default 10).
    #[arg(long)]
    pub bio_epochs: Option<usize>,
    /// Epochs of backprop (default 10).
    #[arg(long)]
    pub bp_epochs: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Also save both models under this directory (DIR/bio, DIR/bp).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bio eval accuracy`.
#[derive(Clone, Debug, Args)]
pub struct AccuracyArgs {
    /// Model directory written by `bio train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset to test on (default: the one it was trained on).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Extra directory to search for datasets.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Test on the first N test images only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bio inspect`.
#[derive(Clone, Debug, Args)]
pub struct InspectArgs {
    /// Model directory written by `bio train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write PNG pictures (receptive fields, weight and activity histograms) into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Extra directory to search for the model's dataset (for the activity histogram).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Backend (for the activity histogram).
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
}

/// `--attack` of `bio eval robustness`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AttackChoice {
    /// Fast gradient sign method (L∞, one step).
    Fgsm,
    /// Projected gradient descent in the L∞ ball.
    Pgd,
    /// Projected gradient descent in the L2 ball.
    #[value(name = "pgd-l2")]
    PgdL2,
    /// The gradient-free Square attack (L∞).
    Square,
    /// APGD with the cross-entropy loss (Croce & Hein 2020).
    #[value(name = "apgd-ce")]
    ApgdCe,
    /// APGD with the targeted DLR loss, one run per target among the top other classes.
    #[value(name = "apgd-t")]
    ApgdT,
    /// APGD-CE through a smooth stand-in of k-WTA in the backward pass (BPDA; `bio` models).
    Surrogate,
    /// APGD-CE examples crafted on the `--source` model, scored on this one.
    Transfer,
    /// The ensemble: apgd-ce, apgd-t, surrogate, transfer (with --source) and Square (5000 queries),
    /// scored as the worst case per image, with sanity checks.
    Strongest,
}

/// `--norm` of `bio eval robustness`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BallChoice {
    /// Largest absolute pixel change.
    Linf,
    /// Euclidean length of the change.
    L2,
}

/// `bio eval robustness`.
#[derive(Clone, Debug, Args)]
pub struct RobustnessArgs {
    /// Model directory written by `bio train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Attacks, comma-separated (pgd and square together add the gradient-masking check).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "pgd")]
    pub attack: Vec<AttackChoice>,
    /// Radii, comma-separated (default 0,0.02,0.05,0.1,0.15,0.2,0.3).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub eps: Vec<f32>,
    /// PGD iterations.
    #[arg(long, default_value_t = 40)]
    pub steps: usize,
    /// PGD step size (default 0.01 for L∞, 2.5·eps/steps for L2).
    #[arg(long, allow_negative_numbers = true)]
    pub step_size: Option<f32>,
    /// Attack the first N test images only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Square attack: model queries per image (default 1000 for `square`, 5000 inside `strongest`).
    #[arg(long)]
    pub queries: Option<usize>,
    /// APGD attacks: iterations per run.
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// APGD attacks: runs from random starts (each on the images earlier runs left robust).
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    /// APGD attacks and `strongest`: norm of the ball (Square is skipped under l2).
    #[arg(long, value_enum, default_value = "linf")]
    pub norm: BallChoice,
    /// Transfer attack: model directory of the source model the examples are crafted on.
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Surrogate attack: temperature of the sigmoid stand-in of k-WTA, relative to the spread of the drives.
    #[arg(long, default_value_t = 0.1)]
    pub surrogate_temperature: f32,
    /// Ensemble attacks: run every attack on every clean-correct image (each attack's own figure), not
    /// only on the images earlier attacks left robust.
    #[arg(long)]
    pub independent: bool,
    /// Targeted attack toward a random other class per image.
    #[arg(long)]
    pub targeted: bool,
    /// Attack the model's own clean predictions instead of the labels.
    #[arg(long)]
    pub use_predictions: bool,
    /// Seed of the attacks' random numbers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also draw the robustness curves into this PNG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Extra directory to search for datasets.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--protocol` of `bio eval fewshot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolChoice {
    /// Episodes of novel classes on a frozen model's hidden features (needs --model).
    Episodic,
    /// Train from scratch with K labels per class (needs --rule).
    #[value(name = "few-labels")]
    FewLabels,
}

/// `bio eval fewshot`.
#[derive(Clone, Debug, Args)]
pub struct FewshotArgs {
    /// Protocol.
    #[arg(long, value_enum, default_value = "episodic")]
    pub protocol: ProtocolChoice,
    /// [episodic] Model directory written by `bio train --classes …` (its other classes are the novel ones).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// [episodic] Classes per episode.
    #[arg(long, default_value_t = 5)]
    pub ways: usize,
    /// Labelled images per class, comma-separated (default 1,5 episodic; 1,5,10,50 few-labels).
    #[arg(long, value_delimiter = ',')]
    pub shots: Vec<usize>,
    /// [episodic] Query images per class.
    #[arg(long, default_value_t = 15)]
    pub queries: usize,
    /// [episodic] Episodes per shot count.
    #[arg(long, default_value_t = 600)]
    pub episodes: usize,
    /// [episodic] Hidden layer whose activity is the feature (default: the last).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// [few-labels] Learning rule.
    #[arg(long, value_enum)]
    pub rule: Option<RuleChoice>,
    /// [few-labels] Dataset.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Extra directory to search for datasets.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// [few-labels] Hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub hidden: Vec<usize>,
    /// [few-labels] Epochs (default: 10 for both rules).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// [few-labels] Repetitions, each with its own labelled subset and seed.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// [few-labels, bio] Also run the variant whose hidden layers see the rest of the training set, unlabelled.
    #[arg(long)]
    pub unlabelled: bool,
    /// [few-labels, --unlabelled] Epochs of label-free hidden-layer training on the unlabelled images.
    #[arg(long, default_value_t = 1)]
    pub hidden_epochs: usize,
    /// [few-labels] Save DIR/fewshot.json here (episodic saves into --model).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bio eval metrics`.
#[derive(Clone, Debug, Args)]
pub struct MetricsArgs {
    /// Model directory written by `bio train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Measure activity on the first N test images only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Extra directory to search for datasets.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bio report`.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// Model directories written by `bio train` (and the `bio eval` commands).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output directory for report.md and its pictures.
    #[arg(long)]
    pub out: PathBuf,
    /// Extra directory to search for datasets (for the activity histograms).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Print the list of files written as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--format` of `bio export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Hugging Face safetensors (F32 tensors with the model's metadata).
    Safetensors,
}

/// `bio export`.
#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    /// Model directory written by `bio train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "safetensors")]
    pub format: ExportFormat,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// Backend (unused by the export itself; accepted like the other commands).
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
