//! Parsing of the command-line values that describe traffic shapes:
//! k6-style durations (`30s`, `1m30s`, `500ms`) and stage lists
//! (`30s:50,60s:50,10s:0`).
//!
//! These are plain functions returning `Result<_, String>` so clap can use
//! them directly as value parsers and print the message next to the flag.

use std::fmt;
use std::time::Duration;

/// One stage of a ramp: reach `target` (VUs, or iterations per second for
/// the arrival-rate executors) linearly over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stage {
    #[serde(serialize_with = "ser_duration_s")]
    pub duration: Duration,
    pub target: f64,
}

impl Stage {
    pub fn new(duration: Duration, target: f64) -> Self {
        Self { duration, target }
    }

    /// Convenience for the scenario tables: whole seconds and a target.
    pub fn secs(secs: u64, target: f64) -> Self {
        Self::new(Duration::from_secs(secs), target)
    }
}

/// A parsed `--stages` value. A newtype, not a `Vec`, because clap would
/// otherwise treat the flag as taking several values.
#[derive(Debug, Clone, PartialEq)]
pub struct StageList(pub Vec<Stage>);

impl fmt::Display for StageList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", fmt_duration_short(s.duration), s.target)?;
        }
        Ok(())
    }
}

fn ser_duration_s<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Parses a Go/k6-style duration: a sequence of `<number><unit>` with units
/// `h`, `m`, `s`, `ms`, `us`/`µs`; a bare number means seconds.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(|| format!("invalid duration `{input}`"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration `{input}` is missing a unit (h, m, s, ms)"))?;
        if num_len == 0 {
            return Err(format!("invalid duration `{input}`"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration `{input}`"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            other => return Err(format!("unknown unit `{other}` in duration `{input}`")),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total).ok_or_else(|| format!("invalid duration `{input}`"))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Parses `30s:50,60s:50,10s:0` into stages.
pub fn parse_stages(input: &str) -> Result<StageList, String> {
    let mut stages = Vec::new();
    for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (d, t) = part
            .split_once(':')
            .ok_or_else(|| format!("stage `{part}` must be DURATION:TARGET, e.g. 30s:50"))?;
        let duration = parse_duration(d)?;
        let target: f64 = t
            .trim()
            .parse()
            .map_err(|_| format!("stage `{part}`: target `{t}` is not a number"))?;
        if !(target.is_finite() && target >= 0.0) {
            return Err(format!("stage `{part}`: target must be ≥ 0"));
        }
        stages.push(Stage::new(duration, target));
    }
    if stages.is_empty() {
        return Err("no stages given".into());
    }
    Ok(StageList(stages))
}

/// Short human form used when echoing a configuration: `1m30s`, `500ms`.
pub fn fmt_duration_short(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms.checked_rem(1000) != Some(0) {
        return if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{}s", d.as_secs_f64())
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_k6_notation() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn stage_lists() {
        let s = parse_stages("30s:50,60s:50,10s:0").expect("valid");
        assert_eq!(
            s.0,
            vec![
                Stage::secs(30, 50.0),
                Stage::secs(60, 50.0),
                Stage::secs(10, 0.0)
            ]
        );
        assert_eq!(s.to_string(), "30s:50,1m:50,10s:0");
        assert!(parse_stages("30s").is_err());
        assert!(parse_stages("30s:-1").is_err());
        assert!(parse_stages("").is_err());
    }

    #[test]
    fn short_duration_echo() {
        assert_eq!(fmt_duration_short(Duration::from_secs(90)), "1m30s");
        assert_eq!(fmt_duration_short(Duration::from_millis(100)), "100ms");
        assert_eq!(fmt_duration_short(Duration::ZERO), "0s");
    }
}
