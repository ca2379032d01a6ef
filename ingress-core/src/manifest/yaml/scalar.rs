//! Scalar typing and tag resolution (see "Scalar typing" in the parent
//! module).

use std::fmt::Write as _;

use serde_json::{Number, Value};
use yaml_rust2::parser::Tag;

use super::{Position, YamlError};

/// Prefix of the YAML core schema tags (`!!str` is `tag:yaml.org,2002:str`).
const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// A scalar after YAML typing, before conversion to JSON.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// Always finite.
    Float(f64),
    /// `.inf`, `-.inf` or `.nan`: `text` as written, `canonical` as a key.
    NonFinite {
        text: String,
        canonical: &'static str,
    },
    Str(String),
}

pub(super) fn scalar_value(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::Int(i) => Value::Number(Number::from(*i)),
        Scalar::UInt(u) => Value::Number(Number::from(*u)),
        Scalar::Float(f) => float_value(*f),
        Scalar::NonFinite { text, .. } | Scalar::Str(text) => Value::String(text.clone()),
    }
}

/// Like [`scalar_value`], moving the string instead of cloning it.
pub(super) fn scalar_into_value(scalar: Scalar) -> Value {
    match scalar {
        Scalar::NonFinite { text, .. } | Scalar::Str(text) => Value::String(text),
        other => scalar_value(&other),
    }
}

/// Go writes an integral float64 below 1e21 without a fraction or exponent,
/// so Kubernetes reads `1.0` or `1e3` from YAML as the integers 1 and 1000.
/// Integral floats that fit 64 bits become integers here too.
fn float_value(f: f64) -> Value {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if f.fract() == 0.0 {
        if (-TWO_63..TWO_63).contains(&f) {
            return Value::Number(Number::from(f as i64));
        }
        if (0.0..TWO_64).contains(&f) {
            return Value::Number(Number::from(f as u64));
        }
    }
    // Only non-finite floats have no JSON number, and they never get here.
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// The string a scalar becomes as a mapping key (as `sigs.k8s.io/yaml`
/// converts go-yaml keys).
pub(super) fn key_string(scalar: &Scalar, position: Position) -> Result<String, YamlError> {
    Ok(match scalar {
        Scalar::Null => {
            return Err(YamlError::Unsupported {
                position,
                message: "a mapping key must not be null".to_owned(),
            });
        }
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::UInt(u) => u.to_string(),
        Scalar::Float(f) => go_float_key(*f),
        Scalar::NonFinite { canonical, .. } => (*canonical).to_owned(),
        Scalar::Str(s) => s.clone(),
    })
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, the format `sigs.k8s.io/yaml`
/// uses for float keys: shortest float32 digits, exponent form when the
/// decimal exponent is below -4 or at least 6.
pub(super) fn go_float_key(f: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let x = f as f32;
    if x.is_nan() {
        return ".nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345679e-7", "1e6".
    let formatted = format!("{x:e}");
    let (neg, rest) = match formatted.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, formatted.as_str()),
    };
    let Some((mantissa, exp)) = rest.split_once('e') else {
        return x.to_string();
    };
    let Ok(exp) = exp.parse::<i64>() else {
        return x.to_string();
    };
    let digits: Vec<char> = mantissa.chars().filter(char::is_ascii_digit).collect();
    let nd = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let digit = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or('0')
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digit(0));
        if nd > 1 {
            out.push('.');
            (1..nd).for_each(|i| out.push(digit(i)));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.unsigned_abs());
    } else {
        let dp = exp + 1;
        if dp > 0 {
            (0..dp).for_each(|i| out.push(digit(i)));
        } else {
            out.push('0');
        }
        let decimals = (nd - dp).max(0);
        if decimals > 0 {
            out.push('.');
            (0..decimals).for_each(|i| out.push(digit(dp + i)));
        }
    }
    out
}

/// Types a scalar. `plain` is false for quoted and block scalars.
pub(super) fn resolve(
    text: String,
    plain: bool,
    tag: Option<&Tag>,
    position: Position,
) -> Result<Scalar, YamlError> {
    let untagged = |text: String| {
        if plain {
            resolve_plain(text)
        } else {
            Scalar::Str(text)
        }
    };
    let Some(tag) = tag else {
        return Ok(untagged(text));
    };
    let full = format!("{}{}", tag.handle, tag.suffix);
    let Some(short) = full.strip_prefix(CORE_TAG_PREFIX) else {
        // The non-specific tag `!` makes a string; other tags are ignored.
        return Ok(if full == "!" {
            Scalar::Str(text)
        } else {
            untagged(text)
        });
    };
    let invalid = |text: &str| YamlError::InvalidValue {
        position,
        message: format!("{text:?} is not a valid !!{short}"),
    };
    match short {
        "str" | "binary" | "timestamp" => Ok(Scalar::Str(text)),
        "int" => match resolve_plain(text.clone()) {
            scalar @ (Scalar::Int(_) | Scalar::UInt(_)) => Ok(scalar),
            _ => Err(invalid(&text)),
        },
        "float" => match resolve_plain(text.clone()) {
            scalar @ (Scalar::Float(_) | Scalar::NonFinite { .. }) => Ok(scalar),
            #[allow(clippy::cast_precision_loss)]
            Scalar::Int(i) => Ok(Scalar::Float(i as f64)),
            #[allow(clippy::cast_precision_loss)]
            Scalar::UInt(u) => Ok(Scalar::Float(u as f64)),
            _ => Err(invalid(&text)),
        },
        "bool" => match resolve_plain(text.clone()) {
            scalar @ Scalar::Bool(_) => Ok(scalar),
            _ => Err(invalid(&text)),
        },
        "null" => match resolve_plain(text.clone()) {
            Scalar::Null => Ok(Scalar::Null),
            _ => Err(invalid(&text)),
        },
        _ => Ok(untagged(text)),
    }
}

/// go-yaml v2's `resolve` for an untagged plain scalar.
fn resolve_plain(text: String) -> Scalar {
    match text.as_str() {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Scalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Scalar::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => {
            return Scalar::NonFinite {
                text,
                canonical: ".nan",
            };
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::NonFinite {
                text,
                canonical: ".inf",
            };
        }
        "-.inf" | "-.Inf" | "-.INF" => {
            return Scalar::NonFinite {
                text,
                canonical: "-.inf",
            };
        }
        _ => {}
    }
    match text.as_bytes().first() {
        Some(b'.') => {
            if let Some(f) = parse_finite_float(&text) {
                return Scalar::Float(f);
            }
        }
        Some(b'0'..=b'9' | b'+' | b'-') => {
            let number: String = text.chars().filter(|&c| c != '_').collect();
            if let Some(i) = go_parse_int(&number) {
                return Scalar::Int(i);
            }
            if let Some(u) = go_parse_uint(&number) {
                return Scalar::UInt(u);
            }
            if let Some(f) = parse_finite_float(&number) {
                return Scalar::Float(f);
            }
            // go-yaml turns integers beyond 64 bits written in hex, octal or
            // binary into big integers; those stay strings here.
        }
        _ => {}
    }
    Scalar::Str(text)
}

/// Go's `strconv.ParseUint(s, 0, 64)`: `0x`, `0o`, `0b` or leading-`0`
/// octal prefixes, no sign, no other characters.
fn go_parse_uint(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    let (radix, digits) = match bytes {
        [] => return None,
        [b'0', b'x' | b'X', _, ..] => (16, s.get(2..)?),
        [b'0', b'o' | b'O', _, ..] => (8, s.get(2..)?),
        [b'0', b'b' | b'B', _, ..] => (2, s.get(2..)?),
        [b'0', ..] => (8, s.get(1..)?),
        _ => (10, s),
    };
    if digits.is_empty() {
        // Only "0" gets here.
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'+') => (false, s.get(1..)?),
        Some(b'-') => (true, s.get(1..)?),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(rest)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// go-yaml's float syntax `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`,
/// parsed; out-of-range values (Go: `ErrRange`) are rejected.
fn parse_finite_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let digits_from = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits_from(i);
    if int_end == i {
        if b.get(i) != Some(&b'.') {
            return None;
        }
        let frac_end = digits_from(i + 1);
        if frac_end == i + 1 {
            return None;
        }
        i = frac_end;
    } else {
        i = int_end;
        if b.get(i) == Some(&b'.') {
            i = digits_from(i + 1);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_end = digits_from(i);
        if exp_end == i {
            return None;
        }
        i = exp_end;
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}
