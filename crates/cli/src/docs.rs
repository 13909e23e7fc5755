//! Shell completions and man pages, generated from the clap definitions so they cannot
//! drift from the real flags.

use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_core::CliError;
use clap::CommandFactory as _;

use crate::Cli;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `bulwark.1` and one page per subcommand into this directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs) -> ExitCode {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "bulwark", &mut std::io::stdout());
    ExitCode::SUCCESS
}

pub fn man(args: &ManArgs) -> Result<ExitCode, CliError> {
    let cmd = Cli::command();
    match &args.dir {
        None => {
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| CliError::operational(format!("cannot write the man page: {e}")))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::operational(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| CliError::operational(format!("cannot write man pages into {}: {e}", dir.display())))?;
            println!("man pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
