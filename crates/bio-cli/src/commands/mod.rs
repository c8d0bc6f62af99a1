//! One module per subcommand; each parses nothing itself and prints only through `crate::output`.

mod demo;
mod eval;
mod inspect;
mod train;

use crate::cli::{Cli, Command, EvalCommand};

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(EvalCommand::Accuracy(args)) => eval::accuracy(args),
        Command::Inspect(args) => inspect::run(args),
    }
}
