//! The `bio` command: thin glue that parses arguments, calls the library crates and prints.

// The doc comments in `cli.rs` are the `--help` text, where `[bio]`/`[bp]` mark rule-specific flags.
#![allow(rustdoc::broken_intra_doc_links)]

mod backend;
mod cli;
mod commands;
mod output;
mod pictures;
mod progress;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = commands::run(args) {
        eprintln!("error: {}", bio_run::one_line(&e));
        std::process::exit(1);
    }
}
