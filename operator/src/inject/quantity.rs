//! The Kubernetes resource quantity grammar (`100m`, `64Mi`, `1.5`, `2e3`), enough to refuse a bad
//! annotation before the API server does, and to compare a request with its limit.

/// The value of a quantity in base units (cores, bytes), or `None` when `text` is not a quantity
/// the API server would accept.
pub fn parse(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let digits = number.strip_prefix(['+', '-']).unwrap_or(number);
    // One optional sign, digits with at most one dot, at least one digit.
    if digits.is_empty()
        || digits.matches('.').count() > 1
        || !digits.chars().any(|c| c.is_ascii_digit())
        || digits.contains(['+', '-'])
    {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(exp.parse().ok()?)
        }
        _ => return None,
    };
    Some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_the_api_servers_forms() {
        let cases = [
            ("10m", 0.01),
            ("1", 1.0),
            ("1.5", 1.5),
            ("64Mi", 64.0 * 1024.0 * 1024.0),
            ("1Gi", 1024f64.powi(3)),
            ("128M", 128e6),
            ("2e3", 2000.0),
            ("+1k", 1000.0),
            (".5", 0.5),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Some(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        for text in [
            "", "m", "1.2.3", "10 m", "64MB", "1mi", "abc", "1e", "--1", "1Mi ", "e3",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}
