//! Ages as people read them, for the summaries of `sync` and `access`.

/// An age in seconds as people read it: `45s`, `12m`, `5h`, `3d`.
pub fn format_age(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::format_age;

    #[test]
    fn ages_round_down_to_the_largest_readable_unit() {
        assert_eq!(format_age(-5), "0s");
        assert_eq!(format_age(119), "119s");
        assert_eq!(format_age(120), "2m");
        assert_eq!(format_age(7_199), "119m");
        assert_eq!(format_age(7_200), "2h");
        assert_eq!(format_age(172_800), "2d");
    }
}
