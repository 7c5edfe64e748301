//! Druid's rules for names that become paths and keys: datasource names, task ids and
//! `sqlQueryId` (Druid's `IdUtils.validateId`, with its messages).
//!
//! A name is refused when it is empty, starts with `.`, contains `/`, contains whitespace
//! other than the space, or contains a control character or one of the UTF-16 code units
//! Druid refuses (surrogates, so anything outside the Basic Multilingual Plane, private
//! use, and `U+FFF1..U+FFFE`). Druid lets NUL, U+001F and DEL through; Grove refuses them
//! too, as the control characters they are.

/// Checks `value` as a `thing` (`"dataSource"`, `"sqlQueryId"`, ...): `Err` holds Druid's
/// message.
pub fn validate_id(thing: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!(
            "{thing} cannot be null or empty. Please provide a {thing}."
        ));
    }
    if value.starts_with('.') {
        return Err(format!("{thing} cannot start with the '.' character."));
    }
    if value.contains('/') {
        return Err(format!("{thing} cannot contain the '/' character."));
    }
    // Java's `\s` less the space: tab, line feed, vertical tab, form feed, carriage return.
    if value
        .chars()
        .any(|c| matches!(c, '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r'))
    {
        return Err(format!(
            "{thing} cannot contain whitespace character except space."
        ));
    }
    for (position, unit) in value.encode_utf16().enumerate() {
        if refused_unit(unit) {
            return Err(format!(
                "{thing} cannot contain character #{unit} (at position {position})."
            ));
        }
    }
    Ok(())
}

/// Druid's refused UTF-16 code units, and the control characters it lets through.
fn refused_unit(c: u16) -> bool {
    c < 32
        || c == 127
        || (c > 127 && c < 159)
        || (c > 0xD800 && c < 0xF8FF)
        || (c > 0xFFF0 && c < 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn druids_rules_and_messages() {
        let err = |v: &str| validate_id("dataSource", v).unwrap_err();
        assert_eq!(
            err(""),
            "dataSource cannot be null or empty. Please provide a dataSource."
        );
        assert_eq!(
            err("./nice/try"),
            "dataSource cannot start with the '.' character."
        );
        assert_eq!(err("a/b"), "dataSource cannot contain the '/' character.");
        for ws in ["a\tb", "new\nline", "a\rb", "a\u{0B}b", "a\u{0C}b"] {
            assert_eq!(
                err(ws),
                "dataSource cannot contain whitespace character except space."
            );
        }
        assert_eq!(
            err("a\u{1}b"),
            "dataSource cannot contain character #1 (at position 1)."
        );
        assert_eq!(
            err("ab\u{85}"),
            "dataSource cannot contain character #133 (at position 2)."
        );
        assert_eq!(
            err("a\u{0}"),
            "dataSource cannot contain character #0 (at position 1)."
        );
        assert_eq!(
            err("a\u{7F}"),
            "dataSource cannot contain character #127 (at position 1)."
        );
        // Outside the BMP: a surrogate pair in Java, refused at its first unit.
        assert_eq!(
            err("x😢"),
            "dataSource cannot contain character #55357 (at position 1)."
        );
        assert_eq!(
            err("\u{E000}"),
            "dataSource cannot contain character #57344 (at position 0)."
        );
        for ok in [
            "wikipedia",
            "with space",
            "t.e.$\\, Россия 한국中国!?",
            "a%b[c]#d?e",
            "query-0f1e",
            "ends.",
        ] {
            validate_id("dataSource", ok).unwrap();
        }
    }
}
