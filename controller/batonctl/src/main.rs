//! `batonctl`: the command line of the Baton controller quorum.
//!
//! `main` only parses flags and maps the outcome to an exit status and one
//! `error: ...` line; the verbs live in [`commands`], the failover client in
//! [`client`], the rendering in [`output`].

mod certs;
mod cli;
mod client;
mod commands;
mod output;
mod plan;
mod reassign;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}", output::error_line(&anyhow::Error::new(e).context("starting the async runtime")));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", output::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
