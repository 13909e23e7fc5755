//! Shell completions and man pages for all five programs, generated from the clap
//! definitions each program parses its arguments with, so they cannot drift from the real
//! flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bulwark_core::CliError;
use bulwark_core::data;
use clap::CommandFactory as _;

use crate::Cli;

/// The programs bulwark ships, `bulwark` first.
pub(crate) const PROGRAMS: [&str; 5] =
    ["bulwark", "bulwark-hook", "bulwark-verify-push", "bulwark-drift", "bulwark-sidecar"];

/// The programs `bulwark X` runs as `bulwark-X` (listed in `bulwark --help`).
pub(crate) const EXTERNAL: [&str; 4] = ["drift", "sidecar", "verify-push", "hook"];

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
    /// The program to complete.
    #[arg(value_parser = PROGRAMS, default_value = "bulwark", conflicts_with = "dir")]
    pub program: String,
    /// Write the completions of all five programs into this directory instead (file names as
    /// the shell expects them: `bulwark-drift` for bash, `_bulwark-drift` for zsh,
    /// `bulwark-drift.fish` for fish).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The program whose page to print.
    #[arg(value_parser = PROGRAMS, default_value = "bulwark", conflicts_with = "dir")]
    pub program: String,
    /// Write every page of all five programs (`bulwark.1`, `bulwark-sidecar.1`, one per
    /// subcommand: `bulwark-sidecar-run.1`, ...) into this directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// A program's clap definition, as that program parses its arguments.
pub(crate) fn command(program: &str) -> clap::Command {
    match program {
        // The hook name is free text to the parser (an unknown one is refused, exit 1: hooks
        // fail closed); completions and the page offer the ones it handles.
        "bulwark-hook" => bulwark_hook::HookArgs::command()
            .mut_arg("hook", |arg| {
                arg.index(1).value_parser(clap::builder::PossibleValuesParser::new(bulwark_hook::HOOKS))
            })
            .mut_arg("args", |arg| arg.index(2)),
        "bulwark-verify-push" => bulwark_verify_push::Cli::command(),
        "bulwark-drift" => bulwark_drift::Args::command(),
        "bulwark-sidecar" => bulwark_sidecar::SidecarArgs::command(),
        // The DESCRIPTION says what `--help`'s list of external commands says, as prose.
        _ => Cli::command().after_help(None::<&str>),
    }
}

/// `bulwark`'s definition with the external commands added as subcommands, so that
/// `bulwark drift <TAB>` completes what `bulwark-drift` takes.
fn bulwark_for_completion() -> clap::Command {
    let mut cmd = command("bulwark");
    for name in EXTERNAL {
        let external = command(&format!("bulwark-{name}")).name(name).bin_name(format!("bulwark {name}"));
        cmd = cmd.subcommand(external);
    }
    cmd
}

fn completion_command(program: &str) -> clap::Command {
    if program == "bulwark" { bulwark_for_completion() } else { command(program) }
}

pub(crate) fn completions(args: &CompletionsArgs) -> Result<ExitCode, CliError> {
    match &args.dir {
        None => {
            let mut cmd = completion_command(&args.program);
            clap_complete::generate(args.shell, &mut cmd, args.program.as_str(), &mut std::io::stdout());
        }
        Some(dir) => {
            create_dir(dir)?;
            for program in PROGRAMS {
                // bash-completion loads `completions/<command>` on first use: no suffix.
                let file = match args.shell {
                    clap_complete::Shell::Bash => program.to_owned(),
                    shell => clap_complete::Generator::file_name(&shell, program),
                };
                let path = dir.join(file);
                let mut out = std::fs::File::create(&path)
                    .map_err(|e| CliError::operational(format!("cannot write {}", path.display())).caused_by(&e))?;
                clap_complete::generate(args.shell, &mut completion_command(program), program, &mut out);
            }
            data!("{} completions for {} programs written to {}", args.shell, PROGRAMS.len(), dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn man(args: &ManArgs) -> Result<ExitCode, CliError> {
    match &args.dir {
        None => {
            // As `generate_to` renders it: no `help` subcommand (it has no page).
            clap_mangen::Man::new(command(&args.program).disable_help_subcommand(true))
                .render(&mut std::io::stdout())
                .map_err(|e| CliError::operational("cannot write the man page").caused_by(&e))?;
        }
        Some(dir) => {
            create_dir(dir)?;
            for program in PROGRAMS {
                clap_mangen::generate_to(command(program), dir).map_err(|e| {
                    CliError::operational(format!("cannot write man pages into {}", dir.display())).caused_by(&e)
                })?;
            }
            data!("man pages of {} programs written to {}", PROGRAMS.len(), dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::operational(format!("cannot create {}", dir.display())).caused_by(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_external_command_is_a_program_and_listed_in_the_help() {
        let help = Cli::command().render_long_help().to_string();
        for name in EXTERNAL {
            assert!(PROGRAMS.contains(&format!("bulwark-{name}").as_str()));
            assert!(help.contains(&format!("  {name} ")), "`{name}` missing from bulwark --help:\n{help}");
        }
    }

    #[test]
    fn every_definition_is_valid() {
        for program in PROGRAMS {
            command(program).debug_assert();
        }
        bulwark_for_completion().debug_assert();
    }
}
