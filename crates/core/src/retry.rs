//! Waiting between attempts.

use std::time::Duration;

/// The wait before retry number `retry` (1 for the first): `base`, doubled for each retry
/// before it, never more than `max`.
pub fn backoff(base: Duration, retry: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let waits: Vec<Duration> = (1..=6).map(|n| backoff(ms(100), n, ms(1000))).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(backoff(ms(100), 200, ms(1000)), ms(1000), "no overflow");
    }
}
