//! Whether to print for a person (terminal) or for a log (plain lines).

use std::io::IsTerminal;

/// Plain output: not a terminal, or `NO_COLOR`/`CI` set. Plain means one event per line,
/// no color, no animation.
pub fn plain(stream: &impl IsTerminal) -> bool {
    !stream.is_terminal()
        || std::env::var_os(crate::env::NO_COLOR).is_some_and(|v| !v.is_empty())
        || std::env::var_os(crate::env::CI).is_some_and(|v| !v.is_empty())
}
