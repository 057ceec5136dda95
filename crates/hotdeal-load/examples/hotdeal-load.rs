//! A stand-alone runner for the load tool, equivalent to `hotdeal load`:
//! `cargo run --release -p hotdeal-load --example hotdeal-load -- <scenario> [flags]`.
//! Handy to load a server built from another revision.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "hotdeal-load",
    about = "Replay a seed load-test scenario against a running hotdeal"
)]
struct Cli {
    #[command(flatten)]
    args: hotdeal_load::LoadArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hotdeal_load::run(cli.args)) {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
