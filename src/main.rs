//! The `chatload` binary: parse the command line and hand it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    chatload::cli::execute(chatload::cli::Cli::parse())
}
