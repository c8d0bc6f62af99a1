//! `bio eval metrics`: the biological metrics of a trained model, per layer.

use anyhow::Result;
use bio_core::Backend;

use crate::backend::with_backend;
use crate::cli::MetricsArgs;
use crate::output::{
    BIOLOGY_HEADER, DIVERSITY_HEADER, SELECTIVITY_HEADER, biology_rows, diversity_rows, outln, print_json, print_table,
    selectivity_rows,
};

/// `bio eval metrics`.
pub fn run(args: MetricsArgs) -> Result<()> {
    with_backend!(args.backend, args.json, |b| run_on(b, &args))
}

/// `bio eval metrics` on one backend.
fn run_on<B: Backend>(b: &B, args: &MetricsArgs) -> Result<()> {
    crate::output::warn_unfinished(&args.model);
    let (out, path, not_saved) = bio_run::eval::biology(b, &args.model, args.data.as_deref(), args.limit)?;
    if args.json {
        print_json(&out)?;
        return crate::output::fail_if_not_saved(not_saved);
    }
    outln!(
        "{} ({}) on {} test images of {}; {}",
        out.model,
        out.rule,
        out.inputs,
        out.dataset,
        if not_saved.is_some() {
            "NOT saved (see the end)".to_string()
        } else {
            format!("saved to {}", path.display())
        }
    );
    print_table(&BIOLOGY_HEADER, &biology_rows(&out.layers));
    outln!();
    outln!("class selectivity of the hidden layers (units: active at least once)");
    print_table(&SELECTIVITY_HEADER, &selectivity_rows(&out.class_selectivity));
    outln!();
    outln!("unit diversity (mean |cos| between units' centred incoming weights; effective number of units)");
    print_table(&DIVERSITY_HEADER, &diversity_rows(&out.layers, &out.initial_diversity));
    if let Some(d) = out.input_diversity {
        outln!(
            "what the first layer sees (test images, or patches, whitened in a whitened layer; the reference for its units): similarity {:.3}, effective units {:.1} of {}",
            d.similarity,
            d.effective_rank,
            d.units
        );
    }
    crate::output::fail_if_not_saved(not_saved)
}
