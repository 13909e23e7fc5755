//! Text for people: durations as messages write them, and text from elsewhere made safe
//! to print.

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
