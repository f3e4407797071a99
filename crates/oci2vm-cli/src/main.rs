//! `oci2vm`: arguments -> validated plan -> `commands/<verb>.rs` -> exit code.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "oci2vm",
    version,
    about = "Turn container images into virtual machines"
)]
struct Cli {
    /// More logging (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot a root filesystem as a VM and run its entrypoint (like `docker run`).
    Run(Box<commands::run::RunArgs>),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Run(a)) => match commands::run::run(*a, cli.verbose) {
            Ok(status) => status,
            Err(e) => {
                // oci2vm::Error displays its source, so skip repeated links of the chain.
                let mut last = String::new();
                let mut msg = String::new();
                for c in e.chain() {
                    let s = c.to_string();
                    if s != last {
                        msg.push_str(if msg.is_empty() { "" } else { ": " });
                        msg.push_str(&s);
                    }
                    last = s;
                }
                eprintln!("oci2vm: {msg}");
                let kind = e.downcast_ref::<oci2vm::Error>().map(|e| e.kind());
                if let Some(h) = kind.and_then(|k| k.hint()) {
                    eprintln!("hint: {h}");
                }
                kind.map_or(1, |k| k.exit_code())
            }
        },
        None => 0,
    };
    std::process::exit(code);
}
