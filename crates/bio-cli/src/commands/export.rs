//! `bio export`: a model's weights in another format.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::backend::with_backend;
use crate::cli::{ExportArgs, ExportFormat};
use crate::output::{outln, print_json};

#[derive(Serialize)]
struct ExportOutput {
    model: String,
    format: String,
    out: String,
    bytes: usize,
    tensors: usize,
    parameters: usize,
}

/// `bio export`.
pub fn run(args: ExportArgs) -> Result<()> {
    // Exporting reads and writes host memory only; the backend is resolved so that an unusable
    // `--backend` is reported the same way as by every other command.
    with_backend!(args.backend, true, |_b| run_on(&args))
}

/// `bio export` (no tensor work, so no backend parameter).
fn run_on(args: &ExportArgs) -> Result<()> {
    let file = bio_data::load_model(&args.model)?;
    let params = bio_eval::exported_params(&file.model);
    let bytes = match args.format {
        ExportFormat::Safetensors => bio_eval::export_safetensors(&file.model),
    };
    bio_data::write_atomic(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    let out = ExportOutput {
        model: args.model.display().to_string(),
        format: "safetensors".into(),
        out: args.out.display().to_string(),
        bytes: bytes.len(),
        tensors: params.tensors.len(),
        parameters: params.count(),
    };
    if args.json {
        return print_json(&out);
    }
    outln!(
        "{} ({}): {} tensors, {} parameters → {} ({} bytes, {})",
        out.model,
        file.model.rule(),
        out.tensors,
        out.parameters,
        out.out,
        out.bytes,
        out.format
    );
    Ok(())
}
