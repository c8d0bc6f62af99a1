//! One module per subcommand; each parses nothing itself and prints only through `crate::output`.

mod continual;
mod demo;
mod eval;
mod export;
mod fewshot;
mod inspect;
mod metrics;
mod oneshot;
mod report;
mod robustness;
mod sweep;
mod train;

use crate::cli::{Cli, Command, EvalCommand};

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    crate::output::set_quiet(cli.quiet);
    if let Some(n) = cli.threads {
        if n == 0 {
            bio_run::invalid!("threads", "must be ≥ 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
    }
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Train(args) => train::run(*args),
        Command::Eval(EvalCommand::Accuracy(args)) => eval::accuracy(args),
        Command::Eval(EvalCommand::Robustness(args)) => robustness::run(args),
        Command::Eval(EvalCommand::Fewshot(args)) => fewshot::run(args),
        Command::Eval(EvalCommand::Metrics(args)) => metrics::run(args),
        Command::Eval(EvalCommand::Oneshot(args)) => oneshot::run(args),
        Command::Eval(EvalCommand::Continual(args)) => continual::run(*args),
        Command::Inspect(args) => inspect::run(args),
        Command::Report(args) => report::run(args),
        Command::Export(args) => export::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "bio", &mut script);
            crate::output::outln!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
    }
}
