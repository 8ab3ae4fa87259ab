//! The text of a breakdown of where a migration's time went, as omd logs it: `name 1.23 ms`
//! per step, separated by `; ` (bench/mig-bench reads it back with [`parse`]).

use std::time::Duration;

/// `d` in milliseconds, to the microsecond.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The steps and their times, in order.
pub fn text(steps: &[(&'static str, Duration)]) -> String {
    steps
        .iter()
        .map(|(name, d)| format!("{name} {}", ms(*d)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The steps of a [`text`], in milliseconds; entries that do not read as one are left out.
pub fn parse(text: &str) -> Vec<(String, f64)> {
    text.split("; ")
        .filter_map(|entry| {
            let entry = entry.trim().strip_suffix(" ms")?;
            let (name, v) = entry.rsplit_once(' ')?;
            Some((name.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_back() {
        let steps = [
            ("stop", Duration::from_micros(120)),
            ("page index", Duration::from_micros(4567)),
        ];
        let t = text(&steps);
        assert_eq!(t, "stop 0.120 ms; page index 4.567 ms");
        assert_eq!(
            parse(&t),
            vec![
                ("stop".to_string(), 0.12),
                ("page index".to_string(), 4.567)
            ]
        );
        assert!(parse("garbage; x y").is_empty());
    }
}
