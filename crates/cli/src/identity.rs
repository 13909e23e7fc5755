//! Whether a server repository's pusher identity can be trusted on this host (best effort).
//!
//! The identity comes from an environment variable (`server.identity_vars`). Whoever can run
//! a command on the host as a user that can write the repository sets any variable to any
//! name (`git push --receive-pack='env GL_USERNAME=merger-bot git-receive-pack'`). This looks
//! for such users: the repository's owner and, when the repository is group-writable, its
//! group's members, whose login shell (`/etc/passwd`) is a real shell and who can reach it
//! (the owner: a key in `~/.ssh/authorized_keys` without a forced `command=`; a group member:
//! any login). It cannot see PAM, `Match` blocks in `sshd_config`, sudo rules or other hosts.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Shells that do not give a command line.
const NO_SHELL: &[&str] = &["git-shell", "nologin", "false", "true", "sync", "gitolite-shell"];

struct Account {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    shell: String,
}

fn accounts() -> Vec<Account> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let [name, _, uid, gid, _, home, shell] = f.as_slice() else { return None };
            Some(Account {
                name: (*name).to_owned(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home: PathBuf::from(home),
                shell: (*shell).to_owned(),
            })
        })
        .collect()
}

fn has_shell(account: &Account) -> bool {
    let base = Path::new(&account.shell).file_name().map(|b| b.to_string_lossy().into_owned()).unwrap_or_default();
    !account.shell.is_empty() && !NO_SHELL.contains(&base.as_str())
}

/// Keys in the account's `authorized_keys` that get a shell (no `command=` option).
fn keys_with_a_shell(account: &Account) -> usize {
    let text = std::fs::read_to_string(account.home.join(".ssh/authorized_keys")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| {
            // Options come before the key type; a forced command is `command="..."`.
            let options = l.split_whitespace().next().unwrap_or_default();
            !(options.starts_with("command=") || options.contains(",command="))
        })
        .count()
}

fn group_members(gid: u32, all: &[Account]) -> Vec<String> {
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let [_, _, g, members] = f.as_slice() else { return None };
            (g.parse::<u32>().ok()? == gid).then(|| members.split(',').filter(|m| !m.is_empty()).map(str::to_owned))
        })
        .flatten()
        .collect();
    names.extend(all.iter().filter(|a| a.gid == gid).map(|a| a.name.clone()));
    names.sort();
    names.dedup();
    names
}

/// Who could push to the repository at `common_dir` with a shell, i.e. name themselves
/// anything; empty when none was found.
pub(crate) fn shell_pushers(common_dir: &Path) -> Vec<String> {
    let Ok(meta) = std::fs::metadata(common_dir) else { return Vec::new() };
    let all = accounts();
    let mut found = Vec::new();
    if let Some(owner) = all.iter().find(|a| a.uid == meta.uid() && a.uid != 0)
        && has_shell(owner)
    {
        let keys = keys_with_a_shell(owner);
        if keys > 0 {
            found.push(format!(
                "`{}` (owner; shell {}, {keys} ssh key(s) without a forced command)",
                owner.name, owner.shell
            ));
        }
    }
    if meta.mode() & 0o020 != 0 {
        for name in group_members(meta.gid(), &all) {
            if let Some(member) = all.iter().find(|a| a.name == name && a.uid != 0 && a.uid != meta.uid())
                && has_shell(member)
            {
                found.push(format!("`{}` (group member; shell {})", member.name, member.shell));
            }
        }
    }
    found
}
