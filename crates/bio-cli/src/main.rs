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
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The outermost context and its causes joined on one line, skipping a cause whose text the line
/// already holds (error types that print their source in their own message would repeat it).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if line.is_empty() {
            line = cause;
        } else if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line.replace('\n', " ")
}
