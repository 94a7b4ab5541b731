//! The one `label` filter matcher, shared by `ps`, `images`, both prunes and
//! `events`: `key` matches when the label is present, `key=value` when it
//! has that value.

/// Whether the labels `get` looks up satisfy one `label` filter value.
pub fn matches<'a>(wanted: &str, get: impl Fn(&str) -> Option<&'a str>) -> bool {
    match wanted.split_once('=') {
        Some((k, v)) => get(k) == Some(v),
        None => get(wanted).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_or_key_value() {
        let get = |k: &str| (k == "a").then_some("1");
        assert!(matches("a", get));
        assert!(matches("a=1", get));
        assert!(!matches("a=2", get));
        assert!(!matches("b", get));
        assert!(!matches("b=1", get));
    }
}
