//! Durations as Mesos writes them in flags and executor environments
//! (`15mins`, `2.5secs`).

use std::time::Duration;

/// Parses a Mesos duration: a number and a unit (ns, us, ms, secs, mins,
/// hrs, days, weeks), e.g. `15mins` or `2.5secs`.
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "secs" | "s" => 1.0,
        "mins" => 60.0,
        "hrs" => 3600.0,
        "days" => 86400.0,
        "weeks" => 604800.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(number * seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mesos_durations() {
        assert_eq!(parse("15mins"), Some(Duration::from_secs(900)));
        assert_eq!(parse("2.5secs"), Some(Duration::from_millis(2500)));
        assert_eq!(parse("10ms"), Some(Duration::from_millis(10)));
        assert_eq!(parse("soon"), None);
    }
}
