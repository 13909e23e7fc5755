//! Value types that check themselves while parsing, so a bad value is reported with the
//! line it is on.

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// A duration written like `"60s"`, `"5m"`, `"300ms"` or `"1h 30m"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::SignedDuration::try_from(self.0) {
            Ok(d) => write!(f, "{d:#}"),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed: jiff::SignedDuration = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a duration; write it like \"300ms\", \"60s\", \"5m\" or \"1h\""))?;
        if parsed.is_negative() {
            return Err(format!("`{s}` is negative; a duration must be zero or more"));
        }
        // Anything longer is a typo, and would overflow deadline arithmetic.
        if parsed > jiff::SignedDuration::from_hours(24 * 366) {
            return Err(format!("`{s}` is longer than a year"));
        }
        std::time::Duration::try_from(parsed).map(Duration).map_err(|e| format!("`{s}`: {e}"))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A command as an array of arguments (never a shell string). Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv(pub Vec<String>);

impl Argv {
    pub fn program(&self) -> &str {
        &self.0[0]
    }
    pub fn args(&self) -> &[String] {
        &self.0[1..]
    }
    /// A `std::process::Command` for this argv (no shell involved).
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.program());
        cmd.args(self.args());
        cmd
    }
}

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgvVisitor;
        impl<'de> de::Visitor<'de> for ArgvVisitor {
            type Value = Argv;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command as an array of arguments, like [\"systemctl\", \"restart\", \"web\"]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Argv, E> {
                let example: Vec<&str> = v.split_whitespace().collect();
                Err(E::custom(format!(
                    "commands are arrays of arguments, never shell strings: write {example:?} instead of {v:?}"
                )))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Argv, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    args.push(arg);
                }
                if args.first().is_none_or(String::is_empty) {
                    return Err(de::Error::custom("a command needs at least a program name"));
                }
                Ok(Argv(args))
            }
        }
        deserializer.deserialize_any(ArgvVisitor)
    }
}

/// A branch-name regex that must match the whole name (as pre-commit-hooks'
/// `no-commit-to-branch --pattern` does with `re.match`… but anchored at both ends, so
/// `release/.*` does not also protect `my-release/x`).
#[derive(Clone)]
pub struct BranchPattern {
    source: String,
    regex: regex::Regex,
}

impl BranchPattern {
    pub fn new(source: &str) -> Result<Self, String> {
        let regex = regex::Regex::new(&format!("^(?:{source})$"))
            .map_err(|e| format!("`{source}` is not a valid regex: {}", e.to_string().replace('\n', " ")))?;
        Ok(Self { source: source.to_owned(), regex })
    }
    pub fn as_str(&self) -> &str {
        &self.source
    }
    pub fn is_match(&self, branch: &str) -> bool {
        self.regex.is_match(branch)
    }
}

impl fmt::Debug for BranchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl<'de> Deserialize<'de> for BranchPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BranchPattern::new(&text).map_err(de::Error::custom)
    }
}

// Written back as they are read, for `bulwark config check --json`.
impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for Argv {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl serde::Serialize for BranchPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}
