//! `bio export`: a model's weights in another format.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::backend::cpu_or_explain;
use crate::cli::{ExportArgs, ExportFormat};
use crate::output::print_json;

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
    cpu_or_explain(args.backend, true)?;
    let file = bio_data::load_model(&args.model)?;
    let params = file.model.params();
    let bytes = match args.format {
        ExportFormat::Safetensors => bio_eval::to_safetensors(params, &bio_eval::model_metadata(&file.model)),
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
    println!(
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
