//! `bio eval fewshot`: the two few-shot protocols (episodic on novel classes, and few labels from scratch).

use anyhow::{Context, Result, bail};
use bio_core::Backend;
use bio_eval::fewshot::{train_bio_strict, train_bio_with_unlabelled, train_bp};
use bio_eval::{EpisodeParams, FewLabelData, FewLabelParams, FewLabelResult, FewShotResult, TrainSpec};
use clap::{Args, FromArgMatches};
use serde::{Deserialize, Serialize};

use super::eval::EVAL_BATCH;
use super::metrics::read_saved;
use super::train::{BIO_EPOCHS, BP_EPOCHS, bio_params, bp_params, load_model};
use crate::backend::with_backend;
use crate::cli::{FewshotArgs, ProtocolChoice, RuleArgs, RuleChoice};
use crate::output::{percent, print_json, print_table};

/// Fewest readout updates of the few-labels protocol's labelled phase (unless `--epochs` is given).
const MIN_LABELLED_UPDATES: usize = 500;

/// Name of the file `bio eval fewshot` saves.
pub const FEWSHOT_FILE: &str = "fewshot.json";

/// `DIR/fewshot.json`: the latest results of each protocol.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FewshotFile {
    /// Novel classes of the episodic protocol.
    #[serde(default)]
    pub novel_classes: Vec<usize>,
    /// Episodic protocol rows (pixels reference rows first).
    #[serde(default)]
    pub episodic: Vec<FewShotResult>,
    /// Few-labels protocol rows.
    #[serde(default)]
    pub few_labels: Vec<FewLabelResult>,
}

#[derive(Serialize)]
struct EpisodicOutput {
    model: String,
    rule: String,
    dataset: String,
    trained_classes: Vec<usize>,
    novel_classes: Vec<usize>,
    results: Vec<FewShotResult>,
}

#[derive(Serialize)]
struct FewLabelsOutput {
    rule: String,
    dataset: String,
    hidden: Vec<usize>,
    epochs: usize,
    results: Vec<FewLabelResult>,
}

/// `mean ± ci95` in percent.
pub fn mean_ci(mean: f64, ci95: f64) -> String {
    format!("{:.2} ± {:.2}%", 100.0 * mean, 100.0 * ci95)
}

/// `bio eval fewshot`.
pub fn run(args: FewshotArgs) -> Result<()> {
    if args.shots.contains(&0) {
        bail!("invalid value for `shots`: every number of shots must be ≥ 1");
    }
    match args.protocol {
        ProtocolChoice::Episodic => episodic(args),
        ProtocolChoice::FewLabels => few_labels(args),
    }
}

fn episodic(args: FewshotArgs) -> Result<()> {
    let Some(dir) = args.model.clone() else {
        bail!("missing `model`: the episodic protocol needs --model DIR (or use --protocol few-labels --rule bio|bp)");
    };
    with_backend!(args.backend, args.json, |b| episodic_on(&b, &args, &dir))
}

/// The episodic protocol on one backend, for the model in `dir`.
fn episodic_on<B: Backend>(b: &B, args: &FewshotArgs, dir: &std::path::Path) -> Result<()> {
    let (file, model) = load_model(b, dir)?;
    let data = bio_data::load(&file.dataset, args.data.as_deref())?;
    let novel: Vec<usize> = (0..data.classes).filter(|c| !file.trained_classes.contains(c)).collect();
    if novel.is_empty() {
        bail!(
            "{} was trained on all {} classes, so none is novel; train on base classes first, e.g. `bio train --classes 0-4 --out DIR`",
            dir.display(),
            data.classes
        );
    }
    let shots = if args.shots.is_empty() { vec![1, 5] } else { args.shots.clone() };
    let params =
        EpisodeParams { ways: args.ways, shots, queries: args.queries, episodes: args.episodes, seed: args.seed };
    let results =
        bio_eval::episodic(&model, &data.test.images, &data.test.labels, &novel, args.layer, &params, EVAL_BATCH)?;
    let mut saved: FewshotFile = read_saved(dir, FEWSHOT_FILE).unwrap_or_default();
    saved.novel_classes = novel.clone();
    saved.episodic = results.clone();
    let path = dir.join(FEWSHOT_FILE);
    bio_data::write_json(&path, &saved).with_context(|| format!("saving {}", path.display()))?;
    let out = EpisodicOutput {
        model: dir.display().to_string(),
        rule: file.model.rule().to_string(),
        dataset: data.name.clone(),
        trained_classes: file.trained_classes.clone(),
        novel_classes: novel,
        results,
    };
    if args.json {
        return print_json(&out);
    }
    println!(
        "{} ({}) on novel classes {:?} of {}: {}-way, {} queries per class, {} episodes; saved to {}",
        out.model,
        out.rule,
        out.novel_classes,
        out.dataset,
        args.ways,
        args.queries,
        args.episodes,
        path.display()
    );
    let rows: Vec<Vec<String>> = out
        .results
        .iter()
        .map(|r| vec![r.features.clone(), r.classifier.clone(), r.shots.to_string(), mean_ci(r.mean, r.ci95)])
        .collect();
    print_table(&["features", "classifier", "shots", "mean ± ci95"], &rows);
    Ok(())
}

fn default_rule_args() -> Result<RuleArgs> {
    let matches = RuleArgs::augment_args(clap::Command::new("bio")).try_get_matches_from(["bio"])?;
    Ok(RuleArgs::from_arg_matches(&matches)?)
}

fn few_labels(args: FewshotArgs) -> Result<()> {
    let Some(rule) = args.rule else {
        bail!("missing `rule`: the few-labels protocol needs --rule bio or --rule bp");
    };
    if args.unlabelled && rule == RuleChoice::Bp {
        bail!("invalid value for `unlabelled`: only the bio rule can learn from unlabelled images");
    }
    if args.seeds == 0 {
        bail!("invalid value for `seeds`: must be ≥ 1");
    }
    let epochs = args.epochs.unwrap_or(match rule {
        RuleChoice::Bio => BIO_EPOCHS,
        RuleChoice::Bp => BP_EPOCHS,
    });
    if epochs == 0 {
        bail!("invalid value for `epochs`: must be ≥ 1");
    }
    if let Some(out) = &args.out {
        bio_data::ensure_output_dir(out)?;
    }
    let mut rule_args = default_rule_args()?;
    rule_args.hidden = args.hidden.clone();
    rule_args.seed = args.seed;
    rule_args.epochs = Some(epochs);
    with_backend!(args.backend, args.json, |b| few_labels_on(&b, &args, rule, epochs, &rule_args))
}

/// The few-labels protocol on one backend, with the validated rule, epochs and rule flags.
fn few_labels_on<B: Backend>(
    b: &B,
    args: &FewshotArgs,
    rule: RuleChoice,
    epochs: usize,
    rule_args: &RuleArgs,
) -> Result<()> {
    let data = bio_data::load(&args.dataset, args.data.as_deref())?;
    let shots = if args.shots.is_empty() { vec![1, 5, 10, 50] } else { args.shots.clone() };
    let batch = rule_args.batch;
    // Few labelled images make few batches: unless --epochs is given, train the labelled phase for at
    // least MIN_LABELLED_UPDATES updates so K = 1 is not judged after a handful of steps.
    let explicit_epochs = args.epochs.is_some();
    let spec_for = |labelled: usize| {
        let batches = labelled.div_ceil(batch).max(1);
        let labelled_epochs = if explicit_epochs { epochs } else { epochs.max(MIN_LABELLED_UPDATES.div_ceil(batches)) };
        TrainSpec { classes: data.classes, epochs: labelled_epochs, hidden_epochs: args.hidden_epochs, batch }
    };
    let fl_data = FewLabelData {
        train_images: &data.train.images,
        train_labels: &data.train.labels,
        test_images: &data.test.images,
        test_labels: &data.test.labels,
    };
    let params = |unlabelled| FewLabelParams { shots: shots.clone(), seeds: args.seeds, seed: args.seed, unlabelled };
    let say = |what: &str| {
        if !args.json {
            eprintln!(
                "training {what}: shots {shots:?} × {} seeds, ≥{epochs} epochs (≥{MIN_LABELLED_UPDATES} updates) on \
                 the labelled images, {} unlabelled epochs, hidden {:?}",
                args.seeds, args.hidden_epochs, args.hidden
            );
        }
    };
    let mut results = Vec::new();
    match rule {
        RuleChoice::Bp => {
            let cfg = bp_params(rule_args)?;
            say("bp");
            results.extend(bio_eval::few_labels("bp", fl_data, &params(false), 1000, |x, y, _, seed| {
                train_bp(b, &cfg, spec_for(x.rows()), x, y, seed)
            })?);
        }
        RuleChoice::Bio => {
            let cfg = bio_params(rule_args)?;
            say("bio-strict (labelled images only)");
            results.extend(bio_eval::few_labels("bio-strict", fl_data, &params(false), 1000, |x, y, _, seed| {
                train_bio_strict(b, &cfg, spec_for(x.rows()), x, y, seed)
            })?);
            if args.unlabelled {
                say("bio-unlabelled (hidden layers also see the rest of the training set, unlabelled)");
                results.extend(bio_eval::few_labels(
                    "bio-unlabelled",
                    fl_data,
                    &params(true),
                    1000,
                    |x, y, u, seed| {
                        let empty;
                        let u = match u {
                            Some(u) => u,
                            None => {
                                empty = bio_core::Matrix::zeros(0, x.cols());
                                &empty
                            }
                        };
                        train_bio_with_unlabelled(b, &cfg, spec_for(x.rows()), x, y, u, seed)
                    },
                )?);
            }
        }
    }
    if let Some(out) = &args.out {
        let mut saved: FewshotFile = read_saved(out, FEWSHOT_FILE).unwrap_or_default();
        saved.few_labels = results.clone();
        bio_data::write_json(out.join(FEWSHOT_FILE), &saved)?;
    }
    let out = FewLabelsOutput {
        rule: format!("{rule:?}").to_lowercase(),
        dataset: data.name.clone(),
        hidden: args.hidden.clone(),
        epochs,
        results,
    };
    if args.json {
        return print_json(&out);
    }
    println!(
        "few labels per class on {} ({} test images), hidden {:?}, {} epochs",
        out.dataset,
        data.test.len(),
        out.hidden,
        epochs
    );
    let rows: Vec<Vec<String>> = out
        .results
        .iter()
        .map(|r| {
            vec![
                r.variant.clone(),
                if r.unlabelled { "yes" } else { "no" }.to_string(),
                r.shots.to_string(),
                r.seeds.to_string(),
                mean_ci(r.mean, r.ci95),
                r.accuracies.iter().map(|a| percent(*a)).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    print_table(&["variant", "unlabelled data", "shots", "seeds", "mean ± ci95", "per seed"], &rows);
    Ok(())
}
