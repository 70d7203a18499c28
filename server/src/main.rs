#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = deskproof::cli::Cli::parse();
    match deskproof::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deskproof: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
