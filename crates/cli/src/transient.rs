//! `bulwark install` bakes the absolute path of `bulwark-hook` into every hook. A path in a
//! cargo target directory or the temporary directory does not last (`cargo clean`, a
//! rebuild of another branch, a reboot), and hooks whose binary is gone fail closed: every
//! commit is refused. Say so at install time, while it is cheap to fix.

use std::path::{Path, PathBuf};

/// Prints a warning when `binary` lives somewhere that does not last, unless the repository
/// itself is in the temporary directory (a throw-away repository, as in tests and the demo,
/// may use a throw-away binary). A warning, not a refusal: installing from a build directory
/// is legitimate while trying bulwark out, and the hooks work until the binary moves.
pub(crate) fn warn_if_transient(binary: &Path, git_dir: &Path) {
    let temp = std::fs::canonicalize(std::env::temp_dir()).unwrap_or_else(|_| std::env::temp_dir());
    let git_dir = std::fs::canonicalize(git_dir).unwrap_or_else(|_| git_dir.to_owned());
    if git_dir.starts_with(&temp) {
        return;
    }
    let place = if let Some(target) = cargo_target_dir(binary) {
        format!("a cargo target directory ({})", target.display())
    } else if binary.starts_with(&temp) {
        format!("the temporary directory ({})", temp.display())
    } else {
        return;
    };
    bulwark_core::output::warning_from(
        &bulwark_core::CliError::usage(format!(
            "the hooks will run {}, which is in {place}: when it is cleaned or rebuilt, every hook fails closed and refuses",
            binary.display()
        ))
        .hint("install the binaries somewhere stable first (install/install.sh, the Debian package, or `cargo install --path . --profile dist`), then run `bulwark install` again with the installed `bulwark` (or pass --hook-binary PATH)"),
    );
}

/// The cargo target directory `path` is in: an ancestor with cargo's `CACHEDIR.TAG`, or
/// with the `.rustc_info.json` cargo keeps there (the tag is only written when cargo itself
/// creates the directory, not when something else made `target/` first).
fn cargo_target_dir(path: &Path) -> Option<PathBuf> {
    path.ancestors().skip(1).find_map(|dir| {
        let tagged =
            std::fs::read_to_string(dir.join("CACHEDIR.TAG")).is_ok_and(|tag| tag.contains("created by cargo"));
        (tagged || dir.join(".rustc_info.json").is_file()).then(|| dir.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cargo_target_directory_is_found_by_its_cache_tag() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        std::fs::create_dir_all(target.join("release")).unwrap();
        assert_eq!(cargo_target_dir(&target.join("release/bulwark-hook")), None);
        std::fs::write(
            target.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cargo.\n",
        )
        .unwrap();
        assert_eq!(cargo_target_dir(&target.join("release/bulwark-hook")), Some(target));
        let untagged = root.path().join("other");
        std::fs::create_dir_all(untagged.join("debug")).unwrap();
        std::fs::write(untagged.join(".rustc_info.json"), "{}").unwrap();
        assert_eq!(cargo_target_dir(&untagged.join("debug/bulwark-hook")), Some(untagged));
    }
}
