//! Scalar resolution and number formatting as the Go libraries under `kubectl kustomize` do it.
//!
//! Kustomize reads manifests with yaml.v3 (via kyaml), turns every resource into JSON with
//! `encoding/json`, and prints it with `sigs.k8s.io/yaml`'s `JSONToYAML`, which decodes the JSON
//! with yaml.v2 and encodes it again with yaml.v2. A value therefore goes through three
//! resolutions, and this module has each one:
//!
//! - [`resolve_v3`]: how yaml.v3 (`resolve.go`) types a plain scalar of the input;
//! - [`normalize_float`]: what a float64 becomes after `json.Marshal` and yaml.v2's decoding
//!   (`1.0` -> the integer `1`, `1e20` stays a float);
//! - [`v2_plain_is_string`]: whether yaml.v2 would read a string back as a string when written
//!   plain, which decides whether the emitter quotes it (`"80"`, `"yes"`, `"2024-01-01"`).

use serde_json::{Number, Value};

/// A plain scalar typed by a Go YAML resolver.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    /// `null`, `~`, empty.
    Null,
    /// `true` / `false` (and yaml.v2's `yes`, `on`, ...).
    Bool(bool),
    /// An integer that fits int64.
    Int(i64),
    /// An integer that fits only uint64.
    Uint(u64),
    /// A float (possibly NaN or infinite).
    Float(f64),
    /// A timestamp, already formatted as Go's `time.RFC3339Nano` (what `json.Marshal` writes).
    Timestamp(String),
    /// A string.
    Str,
}

/// Go's `strconv.ParseUint(s, 0, 64)` on an unsigned digit string with optional base prefix.
fn parse_uint_base0(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let (digits, radix) = if b.len() >= 2 && b[0] == b'0' {
        match b[1] {
            b'x' | b'X' => (&s[2..], 16),
            b'o' | b'O' => (&s[2..], 8),
            b'b' | b'B' => (&s[2..], 2),
            _ => (&s[1..], 8),
        }
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        // "0" alone is handled by the base-10 branch; "0x" has no digits.
        return if s == "0" { Some(0) } else { None };
    }
    if !digits.bytes().all(|c| (c as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint_base0(rest)?;
    if neg {
        if u <= i64::MAX as u64 + 1 {
            Some((u as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else if u <= i64::MAX as u64 {
        Some(u as i64)
    } else {
        None
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (a leading `+` is accepted by ParseInt only, not here).
fn parse_uint_go(s: &str) -> Option<u64> {
    parse_uint_base0(s)
}

/// yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input (out-of-range values are errors).
fn parse_float_go(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if body.starts_with("inf") || body.starts_with("nan") || body.contains('_') {
        // Only reached with yaml-style input; Go's special spellings never get here.
        return None;
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(f),
        _ => None,
    }
}

/// yaml's YAML 1.1 base-60 float pattern `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`,
/// which yaml.v2 quotes on output for compatibility.
pub(crate) fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'+' || b[0] == b'-' || b[0].is_ascii_digit()) || !s.contains(':')
    {
        return false;
    }
    let mut i = 0;
    if b[i] == b'+' || b[i] == b'-' {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        // [0-5]?[0-9]
        if i + 1 < b.len() && (b'0'..=b'5').contains(&b[i]) && b[i + 1].is_ascii_digit() {
            i += 2;
        } else if i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        } else {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// Which YAML library's resolver to follow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// yaml.v2 (YAML 1.1 booleans `yes`/`no`/`on`/`off`/`y`/`n`).
    V2,
    /// yaml.v3 (YAML 1.2 booleans, 0o octals).
    V3,
}

fn resolve(s: &str, schema: Schema) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        _ => {}
    }
    if schema == Schema::V2 {
        match s {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Resolved::Bool(true),
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
                return Resolved::Bool(false);
            }
            _ => {}
        }
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => match parse_float_go(s) {
            Some(f) => Resolved::Float(f),
            None => Resolved::Str,
        },
        b'+' | b'-' | b'0'..=b'9' => {
            if let Some(ts) = parse_timestamp(s) {
                return Resolved::Timestamp(ts);
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if let Some(i) = parse_int_base0(&plain) {
                return Resolved::Int(i);
            }
            if let Some(u) = parse_uint_go(&plain) {
                return Resolved::Uint(u);
            }
            if is_yaml_style_float(&plain)
                && let Some(f) = parse_float_go(&plain)
            {
                return Resolved::Float(f);
            }
            // "0b..." was handled by the base prefix above; "-0b..." and (v3) "-0o..." were not.
            for (prefix, radix, v3_only) in [("-0b", 2, false), ("-0o", 8, true)] {
                if (!v3_only || schema == Schema::V3)
                    && let Some(rest) = plain.strip_prefix(prefix)
                    && !rest.is_empty()
                    && rest.bytes().all(|c| (c as char).is_digit(radix))
                    && let Ok(v) = i64::from_str_radix(&format!("-{rest}"), radix)
                {
                    return Resolved::Int(v);
                }
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// Types a plain scalar of the input as yaml.v3 does (`resolve.go`, used by kyaml).
pub(crate) fn resolve_v3(s: &str) -> Resolved {
    resolve(s, Schema::V3)
}

/// Types a plain scalar as yaml.v2 does (`sigs.k8s.io/yaml`, used for JSON patches in YAML).
pub(crate) fn resolve_v2(s: &str) -> Resolved {
    resolve(s, Schema::V2)
}

/// Whether yaml.v2 reads `s`, written as a plain scalar, back as the same string: its
/// encoder writes a string plain only then (`encode.go`, `stringv`).
pub(crate) fn v2_plain_is_string(s: &str) -> bool {
    resolve(s, Schema::V2) == Resolved::Str && !is_base60_float(s)
}

/// A float64 after `json.Marshal` and yaml.v2's decoding of the JSON text: integral values
/// below 1e21 are printed without exponent by Go's JSON encoder and read back as integers
/// when they fit int64 or uint64. Returns `None` for NaN and infinities, which `json.Marshal`
/// rejects.
pub(crate) fn normalize_float(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        // 2^63 and 2^64 are exact in f64.
        let two63 = 9_223_372_036_854_775_808.0_f64;
        if (-two63..two63).contains(&f) {
            return Some(Value::Number(Number::from(f as i64)));
        }
        if (0.0..2.0 * two63).contains(&f) {
            return Some(Value::Number(Number::from(f as u64)));
        }
    }
    Number::from_f64(f).map(Value::Number)
}

/// A resolved plain scalar as a JSON value, as it comes out of kustomize's JSON round trip.
/// `None` when `json.Marshal` would fail (NaN, infinities).
pub(crate) fn resolved_to_value(r: Resolved, text: &str) -> Option<Value> {
    Some(match r {
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::Number(i.into()),
        Resolved::Uint(u) => Value::Number(u.into()),
        Resolved::Float(f) => return normalize_float(f),
        Resolved::Timestamp(t) => Value::String(t),
        Resolved::Str => Value::String(text.to_owned()),
    })
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which yaml.v2 uses for floats.
pub(crate) fn format_float_g(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go's shortest formatting does.
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    // Go uses %e when the exponent is < -4 or >= 6 (the precision it assumes for shortest).
    if !(-4..6).contains(&exp) {
        // %e with the shortest digits: d.ddde±XX
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if dp >= nd {
        out.push_str(&digits);
        for _ in 0..(dp - nd) {
            out.push('0');
        }
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

fn days_in(month: u32, year: i32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Go's `getnum(s, false)`: one or two digits.
fn getnum(b: &[u8], i: &mut usize) -> Option<u32> {
    let d0 = *b.get(*i).filter(|c| c.is_ascii_digit())?;
    *i += 1;
    match b.get(*i) {
        Some(d1) if d1.is_ascii_digit() => {
            *i += 1;
            Some(u32::from(d0 - b'0') * 10 + u32::from(d1 - b'0'))
        }
        _ => Some(u32::from(d0 - b'0')),
    }
}

/// yaml's `parseTimestamp`: Go's `time.Parse` with the layouts `2006-1-2T15:4:5.999999999Z07:00`,
/// the same with `t`, `2006-1-2 15:4:5.999999999` and `2006-1-2`. Returns the time formatted as
/// `time.RFC3339Nano`, as `json.Marshal` writes a `time.Time`.
pub(crate) fn parse_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let mut i = 5;
    let month = getnum(b, &mut i)?;
    if b.get(i) != Some(&b'-') {
        return None;
    }
    i += 1;
    let day = getnum(b, &mut i)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in(month, year) {
        return None;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if i == b.len() {
        return Some(format!("{date}T00:00:00Z"));
    }
    let sep = b[i];
    if sep != b'T' && sep != b't' && sep != b' ' {
        return None;
    }
    i += 1;
    let hour = getnum(b, &mut i)?;
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    let min = getnum(b, &mut i)?;
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    let sec = getnum(b, &mut i)?;
    if hour >= 24 || min >= 60 || sec >= 60 {
        return None;
    }
    let mut nanos: u64 = 0;
    if i + 1 < b.len() && (b[i] == b'.' || b[i] == b',') && b[i + 1].is_ascii_digit() {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let frac = &s[start..end.min(start + 9)];
        nanos = frac.parse().ok()?;
        for _ in frac.len()..9 {
            nanos *= 10;
        }
        i = end;
    }
    let zone = if sep == b' ' {
        if i != b.len() {
            return None;
        }
        "Z".to_owned()
    } else {
        let rest = &b[i..];
        if rest == b"Z" {
            "Z".to_owned()
        } else {
            if rest.len() != 6 || rest[3] != b':' || !(rest[0] == b'+' || rest[0] == b'-') {
                return None;
            }
            let digits = [rest[1], rest[2], rest[4], rest[5]];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let hh = u32::from(rest[1] - b'0') * 10 + u32::from(rest[2] - b'0');
            let mm = u32::from(rest[4] - b'0') * 10 + u32::from(rest[5] - b'0');
            if hh > 24 || mm > 60 {
                return None;
            }
            if hh == 0 && mm == 0 {
                "Z".to_owned()
            } else {
                format!("{}{hh:02}:{mm:02}", rest[0] as char)
            }
        }
    };
    let mut frac = String::new();
    if nanos > 0 {
        frac = format!(".{nanos:09}");
        while frac.ends_with('0') {
            frac.pop();
        }
    }
    Some(format!("{date}T{hour:02}:{min:02}:{sec:02}{frac}{zone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_resolution_matches_kyaml() {
        assert_eq!(resolve_v3("0755"), Resolved::Int(493));
        assert_eq!(resolve_v3("0o17"), Resolved::Int(15));
        assert_eq!(resolve_v3("0x1F"), Resolved::Int(31));
        assert_eq!(resolve_v3("1_000"), Resolved::Int(1000));
        assert_eq!(resolve_v3("+5"), Resolved::Int(5));
        assert_eq!(resolve_v3("yes"), Resolved::Str);
        assert_eq!(resolve_v3("08"), Resolved::Float(8.0));
        assert_eq!(resolve_v3("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve_v3("-"), Resolved::Str);
        assert_eq!(resolve_v3("1.2.3"), Resolved::Str);
        assert_eq!(
            resolve_v3("2024-01-01"),
            Resolved::Timestamp("2024-01-01T00:00:00Z".into())
        );
        assert_eq!(
            resolve_v3("2001-12-14t21:59:43.10-05:00"),
            Resolved::Timestamp("2001-12-14T21:59:43.1-05:00".into())
        );
        assert_eq!(resolve_v3("2024-02-30"), Resolved::Str);
    }

    #[test]
    fn v2_quoting_decisions() {
        for s in [
            "80",
            "yes",
            "on",
            "y",
            "true",
            "",
            "1e3",
            "2024-01-01",
            "1:20",
            "0x1F",
        ] {
            assert!(!v2_plain_is_string(s), "{s}");
        }
        for s in ["hello", "#x", "1.2.3", "-", "v1", "1a"] {
            assert!(v2_plain_is_string(s), "{s}");
        }
    }

    #[test]
    fn floats_format_like_go() {
        assert_eq!(format_float_g(1.5), "1.5");
        assert_eq!(format_float_g(123456789.5), "1.234567895e+08");
        assert_eq!(format_float_g(1e21), "1e+21");
        assert_eq!(format_float_g(1e20), "1e+20");
        assert_eq!(format_float_g(1e-7), "1e-07");
        assert_eq!(format_float_g(0.0001), "0.0001");
        assert_eq!(format_float_g(123456.0), "123456");
        assert_eq!(format_float_g(-2.25), "-2.25");
        assert_eq!(normalize_float(1.0), Some(Value::from(1)));
        assert_eq!(
            normalize_float(1e19),
            Some(Value::from(10_000_000_000_000_000_000u64))
        );
        assert!(normalize_float(1e20).unwrap().is_f64());
        assert_eq!(normalize_float(f64::NAN), None);
    }
}
