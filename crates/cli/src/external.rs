//! `bulwark X ...` runs `bulwark-X ...`, found beside this binary or on PATH.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bulwark_core::CliError;

fn find(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe().ok().map(|exe| exe.with_file_name(name));
    if let Some(path) = beside.filter(|p| p.is_file()) {
        return Some(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()))
}

pub(crate) fn run(argv: &[OsString], config: Option<&Path>) -> Result<ExitCode, CliError> {
    let Some((sub, rest)) = argv.split_first() else {
        return Err(CliError::usage("no command given").hint("see `bulwark --help`"));
    };
    let sub = sub.to_string_lossy();
    let name = format!("bulwark-{sub}");
    let Some(path) = find(&name) else {
        return Err(CliError::usage(format!(
            "`{sub}` is not a bulwark command and no `{name}` was found beside bulwark or on PATH"
        ))
        .hint("see `bulwark --help` for the commands"));
    };
    let mut cmd = std::process::Command::new(&path);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(rest);
    // exec replaces this process, so exit code, signals and the terminal pass straight through.
    let err = cmd.exec();
    Err(CliError::operational(format!("cannot run {}", path.display())).caused_by(&err))
}
