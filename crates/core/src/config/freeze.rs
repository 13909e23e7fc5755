//! `[[freeze]]`: windows in which no automatic deploy starts (rollbacks always run).
//!
//! Two forms, each checked while parsing so a bad window is reported with its line:
//! weekly (`days`, `from`, `to`, `timezone`) and a holiday (`dates = [first, last]`, whole
//! days, inclusive). `to` is exclusive; a weekly window whose `from` is later than its `to`
//! runs through midnight into the next day, and starts on each of its `days`.

use serde::{Deserialize, Serialize};

/// One `[[freeze]]` window.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "RawFreeze", into = "RawFreeze")]
pub struct FreezeConfig {
    pub span: FreezeSpan,
    /// The IANA name the window's clock times are in (default `UTC`).
    pub timezone: String,
    tz: jiff::tz::TimeZone,
}

/// When a window is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreezeSpan {
    /// From `from` to `to` (exclusive) on each of `days` (the day the window starts).
    Weekly { days: Vec<jiff::civil::Weekday>, from: jiff::civil::Time, to: ClockEnd },
    /// Whole days from `first` through `last`.
    Dates { first: jiff::civil::Date, last: jiff::civil::Date },
}

/// The end of a weekly window: a time of day, or `24:00` (midnight at the end of the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockEnd {
    At(jiff::civil::Time),
    EndOfDay,
}

/// A freeze in force at some instant: which window, and when the freeze is over (`None`: not
/// within a year, e.g. every day all day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveFreeze {
    /// The index of the window in `[[freeze]]` that holds now.
    pub window: usize,
    pub until: Option<jiff::Timestamp>,
}

impl FreezeConfig {
    /// The instants `[start, end)` of the occurrence of this window that holds `now`, if any.
    fn occurrence_at(&self, now: jiff::Timestamp) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
        let local = now.to_zoned(self.tz.clone());
        let today = local.date();
        let at = |date: jiff::civil::Date, time: jiff::civil::Time| {
            date.to_datetime(time).to_zoned(self.tz.clone()).ok().map(|z| z.timestamp())
        };
        match &self.span {
            FreezeSpan::Dates { first, last } => {
                if today < *first || today > *last {
                    return None;
                }
                let start = at(*first, jiff::civil::Time::midnight())?;
                let end = at(last.tomorrow().ok()?, jiff::civil::Time::midnight())?;
                Some((start, end))
            }
            FreezeSpan::Weekly { days, from, to } => {
                // An overnight window that started yesterday may still hold.
                for start_day in [today, today.yesterday().ok()?] {
                    if !days.contains(&start_day.weekday()) {
                        continue;
                    }
                    let start = at(start_day, *from)?;
                    let end = match to {
                        ClockEnd::EndOfDay => at(start_day.tomorrow().ok()?, jiff::civil::Time::midnight())?,
                        ClockEnd::At(to) if to > from => at(start_day, *to)?,
                        ClockEnd::At(to) => at(start_day.tomorrow().ok()?, *to)?,
                    };
                    if start <= now && now < end {
                        return Some((start, end));
                    }
                }
                None
            }
        }
    }
}

/// The freeze in force at `now`, if any: the first window that holds, and the instant when
/// no window holds any more (windows that touch or overlap are one freeze).
pub fn active_freeze(windows: &[FreezeConfig], now: jiff::Timestamp) -> Option<ActiveFreeze> {
    let holding = |t: jiff::Timestamp| windows.iter().enumerate().find_map(|(i, w)| Some((i, w.occurrence_at(t)?)));
    let (window, (_, mut until)) = holding(now)?;
    let horizon = now.checked_add(jiff::SignedDuration::from_hours(24 * 366)).ok()?;
    while let Some((_, (_, end))) = holding(until) {
        if end <= until || end > horizon {
            return Some(ActiveFreeze { window, until: None });
        }
        until = end;
    }
    Some(ActiveFreeze { window, until: Some(until) })
}

/// The TOML shape, checked into a [`FreezeConfig`].
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawFreeze {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    days: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dates: Option<Vec<String>>,
}

const DAY_NAMES: [(&str, jiff::civil::Weekday); 7] = [
    ("mon", jiff::civil::Weekday::Monday),
    ("tue", jiff::civil::Weekday::Tuesday),
    ("wed", jiff::civil::Weekday::Wednesday),
    ("thu", jiff::civil::Weekday::Thursday),
    ("fri", jiff::civil::Weekday::Friday),
    ("sat", jiff::civil::Weekday::Saturday),
    ("sun", jiff::civil::Weekday::Sunday),
];

fn day_name(day: jiff::civil::Weekday) -> &'static str {
    DAY_NAMES.iter().find(|(_, d)| *d == day).map_or("?", |(name, _)| name)
}

fn clock_time(key: &str, text: &str) -> Result<jiff::civil::Time, String> {
    let bad = || format!("`{key} = \"{text}\"` is not a time of day; write it as \"HH:MM\" (24 h), e.g. \"16:00\"");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    jiff::civil::Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn date(text: &str) -> Result<jiff::civil::Date, String> {
    text.parse().map_err(|_| format!("`{text}` in `dates` is not a date; write it as \"YYYY-MM-DD\""))
}

impl TryFrom<RawFreeze> for FreezeConfig {
    type Error = String;

    fn try_from(raw: RawFreeze) -> Result<Self, String> {
        let timezone = raw.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
        let tz = jiff::tz::TimeZone::get(&timezone).map_err(|_| {
            format!(
                "`timezone = \"{timezone}\"` is not a time zone this host knows; use an IANA name such as \"Europe/Paris\" or \"UTC\" (the host's database is /usr/share/zoneinfo, Debian package tzdata)"
            )
        })?;
        let span = if let Some(dates) = &raw.dates { dates_span(dates, &raw)? } else { weekly_span(&raw)? };
        Ok(FreezeConfig { span, timezone, tz })
    }
}

/// The span of a holiday window: `dates = [first, last]`, nothing weekly beside it.
fn dates_span(dates: &[String], raw: &RawFreeze) -> Result<FreezeSpan, String> {
    if raw.days.is_some() || raw.from.is_some() || raw.to.is_some() {
        return Err(
            "a window has either `dates` (whole days) or `days`/`from`/`to` (a weekly window), not both".to_owned()
        );
    }
    let [first, last] = dates else {
        return Err(
            "`dates` is a range of two dates, first and last day included: dates = [\"2026-12-24\", \"2026-12-26\"] (one day: the same date twice)".to_owned(),
        );
    };
    let (first, last) = (date(first)?, date(last)?);
    if last < first {
        return Err(format!("`dates` ends ({last}) before it starts ({first})"));
    }
    Ok(FreezeSpan::Dates { first, last })
}

/// The span of a weekly window: `from`, `to` and optional `days`.
fn weekly_span(raw: &RawFreeze) -> Result<FreezeSpan, String> {
    let (Some(from_text), Some(to)) = (&raw.from, &raw.to) else {
        return Err("a weekly window needs `from` and `to` (\"HH:MM\"), or use `dates = [first, last]` for whole days"
            .to_owned());
    };
    let from = clock_time("from", from_text)?;
    let to = if to == "24:00" { ClockEnd::EndOfDay } else { ClockEnd::At(clock_time("to", to)?) };
    if to == ClockEnd::At(from) {
        return Err(format!(
            "`from` and `to` are both \"{from_text}\": the window would be empty; for whole days write from = \"00:00\", to = \"24:00\""
        ));
    }
    let days =
        match &raw.days {
            None => DAY_NAMES.iter().map(|(_, d)| *d).collect(),
            Some(names) if names.is_empty() => {
                return Err("`days` is empty: the window would never hold (leave it out for every day)".into());
            }
            Some(names) => names
                .iter()
                .map(|name| {
                    DAY_NAMES.iter().find(|(n, _)| n == name).map(|(_, d)| *d).ok_or_else(|| {
                        format!("`{name}` in `days` is not a day; use mon, tue, wed, thu, fri, sat, sun")
                    })
                })
                .collect::<Result<_, _>>()?,
        };
    Ok(FreezeSpan::Weekly { days, from, to })
}

impl From<FreezeConfig> for RawFreeze {
    fn from(config: FreezeConfig) -> Self {
        let hhmm = |t: jiff::civil::Time| format!("{:02}:{:02}", t.hour(), t.minute());
        let mut raw = RawFreeze { timezone: Some(config.timezone), ..RawFreeze::default() };
        match config.span {
            FreezeSpan::Weekly { days, from, to } => {
                raw.days = Some(days.into_iter().map(|d| day_name(d).to_owned()).collect());
                raw.from = Some(hhmm(from));
                raw.to = Some(match to {
                    ClockEnd::At(t) => hhmm(t),
                    ClockEnd::EndOfDay => "24:00".to_owned(),
                });
            }
            FreezeSpan::Dates { first, last } => raw.dates = Some(vec![first.to_string(), last.to_string()]),
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(toml_text: &str) -> FreezeConfig {
        #[derive(Deserialize)]
        struct One {
            freeze: FreezeConfig,
        }
        toml::from_str::<One>(toml_text).map_or_else(|e| panic!("{e}"), |o| o.freeze)
    }

    fn error(toml_text: &str) -> String {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct One {
            freeze: FreezeConfig,
        }
        toml::from_str::<One>(toml_text).expect_err("must be refused").to_string()
    }

    fn ts(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn an_overnight_weekend_window_holds_from_friday_evening_to_monday_morning() {
        // 2026-12-04 is a Friday.
        let w = vec![window(
            "[freeze]\ndays = [\"fri\", \"sat\", \"sun\"]\nfrom = \"16:00\"\nto = \"09:00\"\ntimezone = \"Europe/Paris\"",
        )];
        assert_eq!(active_freeze(&w, ts("2026-12-04T14:59:00Z")), None, "15:59 in Paris");
        let friday = active_freeze(&w, ts("2026-12-04T15:00:00Z")).expect("16:00 in Paris");
        // fri 16:00 → sat 09:00, sat 16:00 → sun 09:00 ... do not touch: the freeze ends sat 09:00.
        assert_eq!(friday.until, Some(ts("2026-12-05T08:00:00Z")));
        assert_eq!(active_freeze(&w, ts("2026-12-05T10:00:00Z")), None, "sat 11:00 in Paris");
        let sunday_night = active_freeze(&w, ts("2026-12-06T23:30:00Z")).expect("mon 00:30 in Paris");
        assert_eq!(sunday_night.until, Some(ts("2026-12-07T08:00:00Z")), "ends monday 09:00");
        assert_eq!(active_freeze(&w, ts("2026-12-07T08:00:00Z")), None, "`to` is exclusive");
    }

    #[test]
    fn windows_that_touch_are_one_freeze_and_dates_are_whole_days() {
        let w = vec![
            window("[freeze]\ndates = [\"2026-12-24\", \"2026-12-26\"]"),
            window("[freeze]\ndays = [\"sun\"]\nfrom = \"00:00\"\nto = \"24:00\""),
        ];
        let eve = active_freeze(&w, ts("2026-12-24T00:00:00Z")).unwrap();
        assert_eq!(eve.window, 0);
        // The 26th is a Saturday; Sunday the 27th continues the freeze to Monday 00:00.
        assert_eq!(eve.until, Some(ts("2026-12-28T00:00:00Z")));
        assert_eq!(active_freeze(&w, ts("2026-12-23T23:59:59Z")), None);
        let always = vec![window("[freeze]\nfrom = \"00:00\"\nto = \"24:00\"")];
        assert_eq!(active_freeze(&always, ts("2026-12-01T12:00:00Z")).unwrap().until, None);
    }

    #[test]
    fn bad_windows_say_what_to_write() {
        for (text, want) in [
            ("[freeze]\ndays = [\"friday\"]\nfrom = \"16:00\"\nto = \"09:00\"", "use mon, tue"),
            ("[freeze]\nfrom = \"4pm\"\nto = \"09:00\"", "\"HH:MM\""),
            ("[freeze]\nfrom = \"16:00\"", "needs `from` and `to`"),
            ("[freeze]\nfrom = \"16:00\"\nto = \"16:00\"", "would be empty"),
            ("[freeze]\nfrom = \"16:00\"\nto = \"09:00\"\ntimezone = \"Mars/Olympus\"", "IANA name"),
            ("[freeze]\ndates = [\"2026-12-26\", \"2026-12-24\"]", "ends (2026-12-24) before"),
            ("[freeze]\ndates = [\"2026-12-24\"]", "range of two dates"),
            ("[freeze]\ndates = [\"2026-12-24\", \"2026-12-26\"]\nfrom = \"10:00\"", "not both"),
            ("[freeze]\nfrom = \"16:00\"\nto = \"09:00\"\nzone = \"UTC\"", "unknown field `zone`"),
        ] {
            let err = error(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_window_serializes_back_to_what_was_written() {
        let w = window("[freeze]\ndays = [\"fri\"]\nfrom = \"16:00\"\nto = \"24:00\"\ntimezone = \"Europe/Paris\"");
        let back = serde_json::to_value(&w).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"days": ["fri"], "from": "16:00", "to": "24:00", "timezone": "Europe/Paris"})
        );
    }
}
