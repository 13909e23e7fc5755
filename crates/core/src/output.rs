//! Everything a program shows a person goes through here: data on stdout; errors, warnings,
//! notes and progress on stderr, each in one format (`error:` / `caused by:` / `hint:`,
//! `warning: ...`, `note: ...`); durations as messages write them, and text from elsewhere
//! made safe to print.
//!
//! The workspace denies `clippy::print_stdout` and `clippy::print_stderr` everywhere else,
//! so a new message cannot invent its own spelling. Nothing here is heavier than `std`:
//! `bulwark-hook` uses it on every commit.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the one place programs print

use std::fmt::Display;
use std::io::Write as _;

use crate::report::CliError;

/// How serious a message on stderr is: the word it starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The program could not do what was asked (or refuses to).
    Error,
    /// Something is wrong, but the program carries on.
    Warning,
    /// Worth knowing; nothing is wrong.
    Note,
}

impl Level {
    /// The prefix a line of this level starts with, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
        }
    }
}

/// One line of data on stdout (a report line, a JSON record, an id): what scripts read.
/// A closed pipe (`bulwark status | head -1`) ends the output quietly instead of panicking
/// like `println!`; any other write error is said on stderr.
pub fn data(line: impl Display) {
    write_stdout(format_args!("{line}\n"));
}

/// Text on stdout exactly as given (it brings its own newlines).
pub fn data_text(text: &str) {
    write_stdout(format_args!("{text}"));
}

fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        warning(format_args!("cannot write to stdout: {e}"));
    }
}

/// `warning: <message>` on stderr: something is wrong, and the program carries on.
pub fn warning(message: impl Display) {
    line(Level::Warning, message);
}

/// `note: <message>` on stderr.
pub fn note(message: impl Display) {
    line(Level::Note, message);
}

/// A line on stderr without a level: progress, or the one line a successful check prints
/// where stdout belongs to someone else (a hook's output goes to the person running git).
pub fn info(message: impl Display) {
    emit(&crate::redact::clean(&format!("{message}\n")));
}

/// An error with its causes and hints, the way every program shows it (see
/// [`CliError::render`]).
pub fn error(err: &CliError) {
    emit(&err.render());
}

/// An error the program survives, shown as a warning with its causes and hints.
pub fn warning_from(err: &CliError) {
    emit(&err.render_as(Level::Warning));
}

/// Known secrets and URL credentials never reach stderr: [`CliError::render`] removes them
/// from errors, and this from every other line.
fn line(level: Level, message: impl Display) {
    emit(&crate::redact::clean(&format!("{}: {message}\n", level.as_str())));
}

fn emit(text: &str) {
    eprint!("{text}");
}

/// `warning!("cannot remove {}: {e}", path.display())`: [`warning`] with `format!` arguments.
#[macro_export]
macro_rules! warning {
    ($($arg:tt)*) => { $crate::output::warning(format_args!($($arg)*)) };
}

/// `note!(...)`: [`note`] with `format!` arguments.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => { $crate::output::note(format_args!($($arg)*)) };
}

/// `data!(...)`: [`data`] (a line on stdout) with `format!` arguments.
#[macro_export]
macro_rules! data {
    () => { $crate::output::data("") };
    ($($arg:tt)*) => { $crate::output::data(format_args!($($arg)*)) };
}

/// `info!(...)`: [`info`] (a plain line on stderr) with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::output::info(format_args!($($arg)*)) };
}

/// A duration as every message writes it: `300ms`, `5s`, `1.5s`.
pub fn fmt_duration(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        let secs = d.as_secs_f64();
        if (secs - secs.round()).abs() < 0.001 { format!("{secs:.0}s") } else { format!("{secs:.1}s") }
    }
}

/// `text` with control characters (escape sequences, carriage returns, NUL...) written as
/// `\u{1b}`-style escapes, so text from elsewhere (a break-glass reason, a job file) cannot
/// move the cursor, recolor or hide what a terminal shows. Newlines and tabs stay.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` as one word for `sh`, always single-quoted (`'it'\''s'`): what generated scripts
/// and the commands in hints use.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as one word for `sh`, quoted only when it needs to be (a plain path stays as it
/// is, so a hint reads naturally).
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b));
    if plain { text.to_owned() } else { shell_quote(text) }
}

/// What may be printed of text bulwark did not write itself: known secrets and URL
/// credentials removed ([`crate::redact::clean`]), control characters escaped.
pub fn printable(text: &str) -> String {
    escape_controls(&crate::redact::clean(text)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_config() {
        use std::time::Duration;
        assert_eq!(fmt_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn control_characters_are_escaped_but_newlines_stay() {
        assert_eq!(escape_controls("a\u{1b}[2Jb\rc\u{7}\nd"), "a\\u{1b}[2Jb\\rc\\u{7}\nd");
        assert!(matches!(escape_controls("plain\ttext\n"), std::borrow::Cow::Borrowed(_)));
    }
}
