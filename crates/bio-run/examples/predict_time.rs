//! The Rust side of the binding-overhead measurement (`scripts/python-overhead.py`): the time of the
//! call `Model.predict` makes, without Python: the model's weights uploaded to the CPU backend, then
//! every test image classified in batches of `EVAL_BATCH`. The test set is decoded before timing.
//!
//!     cargo run --release -p bio-run --example predict_time -- MODEL_DIR [REPEATS]
//!
//! Prints one JSON object: `seconds` (each repeat), `images`, `accuracy`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bio_run::{BackendChoice, EVAL_BATCH, on_backend};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: predict_time MODEL_DIR [REPEATS]")?);
    let repeats: usize = args.next().map_or(Ok(5), |r| r.parse()).context("REPEATS must be a number")?;
    let file = bio_data::load_model(&dir)?;
    let data = bio_data::load(&file.dataset, None)?;
    let (backend, _) = bio_run::resolve(BackendChoice::Cpu)?;
    let mut seconds = Vec::with_capacity(repeats);
    let mut accuracy = 0.0;
    for _ in 0..repeats {
        let start = Instant::now();
        let evaluation = on_backend!(&backend, |b| {
            let model = file.model.load(b)?;
            bio_eval::evaluate(&model, &data.test.images, &data.test.labels, EVAL_BATCH)?
        });
        seconds.push(start.elapsed().as_secs_f64());
        accuracy = evaluation.accuracy;
    }
    let report = serde_json::json!({ "seconds": seconds, "images": data.test.labels.len(), "accuracy": accuracy });
    println!("{report}");
    Ok(())
}
