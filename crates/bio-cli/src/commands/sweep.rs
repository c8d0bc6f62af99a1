//! `bio sweep`: spec file → `bio_run::sweep` → progress lines and the table.

use anyhow::{Result, bail};
use bio_run::sweep::{self, SweepEvent, SweepSpec};

use crate::cli::SweepArgs;
use crate::output::{outln, print_json, print_table};

fn percent(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite()).map(|v| format!("{:.2}%", 100.0 * v)).unwrap_or_else(|| "—".into())
}

/// `bio sweep`.
pub fn run(args: SweepArgs) -> Result<()> {
    let quiet = crate::output::quiet() || args.json;
    let results = match (&args.spec, args.merge.is_empty()) {
        (Some(_), false) => bio_run::invalid!("merge", "give either a spec file or --merge DIR…, not both"),
        (None, true) => bail!("missing spec: `bio sweep SPEC.toml --out DIR`, or `bio sweep --merge DIR… --out DIR`"),
        (None, false) if args.compare => sweep::compare(&args.merge, &args.out)?,
        (None, false) => sweep::merge(&args.merge, &args.out)?,
        (Some(path), true) => {
            let spec = SweepSpec::read(path)?;
            let say = |e: &SweepEvent<'_>| {
                if quiet {
                    return;
                }
                match e {
                    SweepEvent::Started { index, total, run, redo } => match redo {
                        Some(why) => eprintln!("[{index}/{total}] {} redone ({why}) ...", run.name),
                        None => eprintln!("[{index}/{total}] {} ...", run.name),
                    },
                    SweepEvent::Skipped { run } => eprintln!("{}: done before, not redone", run.name),
                    SweepEvent::Finished { result } => match &result.error {
                        Some(why) => eprintln!("{}: FAILED: {why}", result.name),
                        None => eprintln!(
                            "{}: validation {}, robust {} ({:.0} s)",
                            result.name,
                            percent(result.validation_accuracy),
                            percent(result.robust_accuracy),
                            result.train_seconds
                        ),
                    },
                }
            };
            sweep::run(&spec, &args.out, args.backend, args.jobs, args.shard, &say)?
        }
    };
    if args.json {
        return print_json(&results);
    }
    let rows: Vec<Vec<String>> = results
        .points
        .iter()
        .map(|p| {
            vec![
                p.point.clone(),
                p.seeds.to_string(),
                percent(Some(p.validation_accuracy)),
                percent(Some(p.robust_accuracy)),
                if p.on_front { "★".into() } else { String::new() },
            ]
        })
        .collect();
    print_table(&["point", "seeds", "validation", "robust (worst case)", "front"], &rows);
    let failed = results.runs.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        outln!("{failed} runs failed (reasons in {})", args.out.join("sweep.md").display());
    }
    outln!("table: {}; plot: {}", args.out.join("sweep.md").display(), args.out.join("pareto.png").display());
    Ok(())
}
