//! `umbrald`: the Umbral proxy re-encryption appliance.
//!
//! A thin dispatcher: each subcommand lives in its own module.

mod bench;
mod config_cmd;
mod demo;
mod duration;
mod error;
mod keygen;
mod local;
mod logging;
mod memlock;
mod serve;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The global allocator (feature `mimalloc`, on by default): with the system allocator every
/// batch's large buffers were mapped, faulted in and unmapped again (docs/PERFORMANCE.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Umbral proxy re-encryption appliance.
#[derive(Debug, Parser)]
#[command(name = "umbrald", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every `umbrald` subcommand.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the re-encryption server (QUIC, ALPN umbrald/1).
    Serve(serve::ServeArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    // The client subcommands take their help text from their argument structs' docs.
    Demo(demo::DemoArgs),
    Bench(bench::BenchArgs),
    Keygen(keygen::KeygenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Config(cmd) => config_cmd::run(cmd),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Keygen(args) => keygen::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("umbrald: {e:#}");
            ExitCode::FAILURE
        }
    }
}
