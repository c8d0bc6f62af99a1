//! Command-line arguments.

use std::path::PathBuf;

use bio_run::{BackendChoice, DataSpec, RuleName, SessionSpec};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Train, compare, attack and inspect networks trained by a biologically inspired rule and by backprop.
#[derive(Debug, Parser)]
#[command(name = "bio", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// CPU threads for the work (default: every core, or $RAYON_NUM_THREADS).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bars or informational lines on stderr; results (stdout), warnings and errors still print.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
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
        override_usage = "bio train --out DIR [OPTIONS]\n       bio train --resume DIR [--epochs N] [--backend B]",
        after_help = "Examples:\n  bio train --rule bio --dataset fashion-mnist --hidden 2000 --epochs 5 --out runs/bio\n  bio train --rule bp --optimizer adam --lr 1e-3 --out runs/bp\n  bio train --rule bio --ablate homeostasis,structural --out runs/no-homeo\n  bio train --rule bio --classes 0-4 --out runs/bio-base   # base classes only, for few-shot\n  bio train --rule bio --validation 10000 --out runs/tune  # tune on 10000 held-out training images, not the test set"
    )]
    Train(Box<TrainArgs>),
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
    /// Train many settings × seeds from a spec file, judge each on held-out images (clean and worst-case
    /// robust accuracy) and draw the Pareto front (DIR/sweep.md, DIR/sweep.json, DIR/pareto.png).
    #[command(
        after_help = "Examples:\n  bio sweep sweeps/tune.toml --out runs/tune --jobs 2\n  bio sweep sweeps/tune.toml --out runs/tune-0 --shard 0/4   # one of 4 machines\n  bio sweep --merge runs/tune-0 runs/tune-1 runs/tune-2 runs/tune-3 --out runs/tune\n  bio sweep --merge runs/round2-sparse runs/round2-schedule --compare --out runs/round2   # two sweeps on one plot\n\nThe spec format is documented in crates/bio-run/src/sweep.rs and docs/SWEEP.md; a finished run is not redone."
    )]
    Sweep(SweepArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  bio completions bash > ~/.local/share/bash-completion/completions/bio\n  bio completions zsh > ~/.zfunc/_bio\n  bio completions fish > ~/.config/fish/completions/bio.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
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
    /// Omniglot one-shot classification: Lake's 20 runs, error per run and mean ± 95% CI (also saved to DIR/oneshot.json); with --episodes, N-way K-shot curves on the classes the model never saw (DIR/oneshot-curves.json, .png).
    #[command(
        after_help = "Examples:\n  bio eval oneshot   # the reference rows: Modified Hausdorff Distance and pixels\n  bio train --rule bio --dataset omniglot-small1 --out runs/omni-bio\n  bio eval oneshot --model runs/omni-bio\n  bio train --rule bio --dataset omniglot-small1 --classes 0-69,110-135 --out runs/omni-bio-base   # Korean held out\n  bio eval oneshot --model runs/omni-bio-base --episodes 400 --ways 5,20 --shots 1,5"
    )]
    Oneshot(OneshotArgs),
    /// Continual learning: contexts learned one after another (Split/Permuted; class/task/domain-incremental).
    #[command(
        after_help = "Examples:\n  bio eval continual --dataset embedded --iterations 50 --hidden 100\n  bio eval continual --scenario class --methods bio,bp,bp-replay,ncm-random-kwta --hidden 400 --iterations 500 --batch 128 --out runs/continual\n  bio eval continual --experiment permuted --methods bio,bp,bp-ewc --json"
    )]
    Continual(Box<ContinualArgs>),
}

/// `bio train`: the session's spec (saved as DIR/config.json) and how to present it.
#[derive(Clone, Debug, Args)]
pub struct TrainArgs {
    /// What to train.
    #[command(flatten)]
    pub spec: SessionSpec,
    /// Print the final metrics as JSON.
    #[arg(long)]
    pub json: bool,
    /// Continue the run in DIR from its last checkpoint, with the flags in DIR/config.json (flags given
    /// here must agree with them); the result is bit-identical to an uninterrupted run.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

/// `bio demo`.
#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// Dataset (falls back to the embedded subset when fashion-mnist is not installed).
    #[command(flatten)]
    pub data: DataSpec,
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
    /// Also save both models under this directory (DIR/bio, DIR/bp; an earlier demo's are replaced).
    #[arg(long)]
    pub out: Option<PathBuf>,
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

/// `bio eval robustness`.
#[derive(Clone, Debug, Args)]
pub struct RobustnessArgs {
    /// Model directory written by `bio train`.
    #[arg(long)]
    pub model: PathBuf,
    /// The attacks and their settings.
    #[command(flatten)]
    pub spec: bio_run::robustness::RobustnessSpec,
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
    /// [episodic] Also score the layer's drive re-thresholded at these densities ρ' (k-WTA with
    /// k = round(ρ'·N), comma-separated, e.g. 0.1,0.3): rows `hidden.L.top{ρ'}`.
    #[arg(long, value_delimiter = ',')]
    pub code_densities: Vec<f32>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// [few-labels] Learning rule.
    #[arg(long, value_parser = RuleName::parser())]
    pub rule: Option<RuleName>,
    /// [few-labels] Dataset.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Extra directory to search for datasets.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// [few-labels] Hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub hidden: Vec<usize>,
    /// [few-labels] Epochs of the labelled phase (default: the rule's, raised to at least
    /// `MIN_LABELLED_UPDATES` updates).
    #[arg(long, help = format!(
        "[few-labels] Epochs of the labelled phase (default: the rule's: {}; raised so that the phase makes at least {} updates)",
        bio_run::spec::default_epochs_text(),
        bio_run::eval::MIN_LABELLED_UPDATES
    ))]
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

/// `bio eval oneshot`.
#[derive(Clone, Debug, Args)]
pub struct OneshotArgs {
    /// Model directory written by `bio train` (without it, only the reference rows).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Side the runs are resized to for the pixel rows (default: the model's input side, else 28).
    #[arg(long)]
    pub side: Option<usize>,
    /// Hidden layer whose activity and drive are the features (default: the last).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Episodic curves instead of Lake's runs: this many N-way K-shot episodes per (ways, shots), drawn
    /// from every image of the classes the model was not trained on (needs --model).
    #[arg(long)]
    pub episodes: Option<usize>,
    /// [--episodes] Classes per episode, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "5,20", requires = "episodes")]
    pub ways: Vec<usize>,
    /// [--episodes] Support images per class, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,5", requires = "episodes")]
    pub shots: Vec<usize>,
    /// [--episodes] Query images per class.
    #[arg(long, default_value_t = 15, requires = "episodes")]
    pub queries: usize,
    /// [--episodes] Seed of the episode sampler.
    #[arg(long, default_value_t = 0, requires = "episodes")]
    pub seed: u64,
    /// [--episodes] Extra directory to search for the model's dataset.
    #[arg(long, requires = "episodes")]
    pub data: Option<PathBuf>,
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

/// `bio sweep`.
#[derive(Clone, Debug, Args)]
pub struct SweepArgs {
    /// The sweep's spec (TOML).
    pub spec: Option<PathBuf>,
    /// Output directory: DIR/runs/NAME per run, DIR/sweep.md, DIR/sweep.json, DIR/pareto.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Runs side by side, each on an equal share of the threads.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Run only this shard, I/N (0 ≤ I < N): every N-th run starting at I; join shards with --merge.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<bio_run::sweep::Shard>,
    /// Join the results of these sweep directories (shards) into --out instead of running.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// With --merge: the directories are different sweeps (judged alike), not shards of one; each is
    /// a group named after its directory, drawn in its own colour on one plot with one front.
    #[arg(long, requires = "merge")]
    pub compare: bool,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bio eval continual`.
#[derive(Clone, Debug, Args)]
pub struct ContinualArgs {
    /// The protocol, the methods and their settings.
    #[command(flatten)]
    pub spec: bio_run::continual::ContinualSpec,
    /// Backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: bio_run::BackendChoice,
    /// Print JSON (every run's accuracy matrix and metrics, and the summary).
    #[arg(long)]
    pub json: bool,
}
