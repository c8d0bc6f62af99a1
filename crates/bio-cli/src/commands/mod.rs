//! One module per subcommand; each parses nothing itself and prints only through `crate::output`.

mod demo;
mod eval;
mod export;
mod fewshot;
mod inspect;
mod metrics;
mod pictures;
mod report;
mod robustness;
mod train;

use crate::cli::{Cli, Command, EvalCommand};

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(EvalCommand::Accuracy(args)) => eval::accuracy(args),
        Command::Eval(EvalCommand::Robustness(args)) => robustness::run(args),
        Command::Eval(EvalCommand::Fewshot(args)) => fewshot::run(args),
        Command::Eval(EvalCommand::Metrics(args)) => metrics::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Report(args) => report::run(args),
        Command::Export(args) => export::run(args),
    }
}
