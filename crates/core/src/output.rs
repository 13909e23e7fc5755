//! Text from elsewhere made safe to print.

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
    fn control_characters_are_escaped_but_newlines_stay() {
        assert_eq!(escape_controls("a\u{1b}[2Jb\rc\u{7}\nd"), "a\\u{1b}[2Jb\\rc\\u{7}\nd");
        assert!(matches!(escape_controls("plain\ttext\n"), std::borrow::Cow::Borrowed(_)));
    }
}
