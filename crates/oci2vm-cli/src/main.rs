//! `oci2vm`: arguments -> validated plan -> `commands/<verb>.rs` -> exit code.

use clap::Parser;

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
}

fn main() {
    let cli = Cli::parse();
    let _ = cli.verbose;
}
