//! Jinja2's `round` and `format` filters with Python's number semantics: `round` keeps an
//! integer an integer under `common` and returns a float under `ceil`/`floor`; `format` is
//! Python's printf-style `%` operator.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, ErrorKind, Value};

use super::args::CallArgs;
use super::{as_float, python_repr, python_str};

pub fn register(env: &mut minijinja::Environment<'static>) {
    env.add_filter("round", round);
    env.add_filter("format", format);
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// `round(precision=0, method='common')`.
fn round(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    super::filters::reject_undefined(value, "round")?;
    let args = CallArgs::new("round", args, kwargs);
    let precision = match args.get(0, "precision")? {
        Some(p) if p.kind() == ValueKind::Number && p.is_integer() => i32::try_from(p.clone())?,
        Some(p) if p.kind() == ValueKind::Bool => i32::from(p.is_true()),
        Some(_) => return Err(invalid("round: precision must be an integer")),
        None => 0,
    };
    let method = args
        .get(1, "method")?
        .map(|m| python_str(&m))
        .unwrap_or_else(|| "common".into());
    args.finish(2)?;
    if !matches!(method.as_str(), "common" | "ceil" | "floor") {
        return Err(invalid("round: method must be common, ceil or floor"));
    }
    let integer = match value.kind() {
        ValueKind::Bool => Some(i128::from(value.is_true())),
        ValueKind::Number if value.is_integer() => {
            Some(i128::try_from(value.clone()).map_err(|_| {
                invalid("round: an integer beyond 128 bits is not supported (see docs/drivers.md)")
            })?)
        }
        ValueKind::Number => None,
        _ => {
            return Err(invalid(format!(
                "round: {} is not a number",
                python_repr(value)
            )));
        }
    };
    if method == "common" {
        return Ok(match integer {
            // Python's `round(int, ndigits)` is an exact integer, ties to even.
            Some(i) if precision >= 0 => Value::from(i),
            Some(i) => match 10i128.checked_pow(precision.unsigned_abs()) {
                Some(unit) => {
                    let (q, r) = (i.div_euclid(unit), i.rem_euclid(unit));
                    let q = match (2 * r).cmp(&unit) {
                        std::cmp::Ordering::Less => q,
                        std::cmp::Ordering::Greater => q + 1,
                        std::cmp::Ordering::Equal => q + (q & 1),
                    };
                    Value::from(q * unit)
                }
                // 10 ** -precision is beyond every 128-bit integer's size: it rounds to 0.
                None => Value::from(0),
            },
            None => Value::from(round_half_even(
                as_float(value).unwrap_or_default(),
                precision,
            )),
        });
    }
    // Python: math.ceil(value * 10 ** precision) / 10 ** precision, a float.
    if let Some(i) = integer
        && precision >= 0
    {
        // `value * 10 ** precision` is an exact integer, its ceiling itself, and the true
        // division by `10 ** precision` gives it back correctly rounded: the integer as a
        // float (Rust's `as` rounds to nearest, ties to even, as Python does).
        return Ok(Value::from(i as f64));
    }
    let f = match integer {
        Some(i) => i as f64,
        None => as_float(value).unwrap_or_default(),
    };
    // `10 ** precision` as Python has it: an exact integer (converted to the nearest float
    // where it meets a float), or `pow(10.0, precision)` for a negative precision.
    let scale: f64 = format!("1e{precision}").parse().unwrap_or(f64::INFINITY);
    let scaled = f * scale;
    if !scaled.is_finite() {
        return Err(invalid(
            "round: cannot convert float infinity or NaN to integer",
        ));
    }
    let rounded = if method == "ceil" {
        scaled.ceil()
    } else {
        scaled.floor()
    };
    // math.floor/ceil return integers, so a negative zero comes back positive.
    Ok(Value::from((rounded + 0.0) / scale))
}

/// Python's `round(float, ndigits)`: correctly rounded, exact ties to even.
fn round_half_even(f: f64, precision: i32) -> f64 {
    if !f.is_finite() {
        return f;
    }
    if precision >= 0 {
        let text = format!("{f:.prec$}", prec = precision.min(340) as usize);
        return text.parse().unwrap_or(f);
    }
    let pow = 10f64.powi(-precision);
    let y = f / pow;
    let mut z = y.round();
    if (y - z).abs() == 0.5 {
        z = 2.0 * (y / 2.0).round();
    }
    z * pow
}

/// `format(*args, **kwargs)`: `value % args` (or `% kwargs`), Python's printf-style.
fn format(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let named: Vec<&str> = kwargs.args().collect();
    if !args.is_empty() && !named.is_empty() {
        return Err(invalid(
            "format: can't handle positional and keyword arguments at the same time",
        ));
    }
    let template = python_str(value);
    let mapping = if named.is_empty() {
        None
    } else {
        let mut entries = Vec::new();
        for name in &named {
            entries.push((name.to_string(), kwargs.get::<Value>(name)?));
        }
        Some(entries)
    };
    let out = percent_format(&template, &args.0, mapping.as_deref())?;
    kwargs.assert_all_used()?;
    Ok(out)
}

struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    zero: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
}

/// Python's `text % args` for the conversions templates use: `s r a d i u f F e E g G x X o c %`.
pub fn percent_format(
    text: &str,
    args: &[Value],
    mapping: Option<&[(String, Value)]>,
) -> Result<String, Error> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut next = 0;
    let mut i = 0;
    // With exactly one argument that is a mapping, `%(name)s` reads from it.
    let single_map = (args.len() == 1 && args[0].kind() == ValueKind::Map).then(|| &args[0]);
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        let mut key = None;
        if chars.get(i) == Some(&'(') {
            let start = i + 1;
            let end = chars[start..]
                .iter()
                .position(|c| *c == ')')
                .map(|p| p + start)
                .ok_or_else(|| invalid("format: incomplete format key"))?;
            key = Some(chars[start..end].iter().collect::<String>());
            i = end + 1;
        }
        let mut spec = Spec {
            left: false,
            plus: false,
            space: false,
            zero: false,
            alt: false,
            width: 0,
            precision: None,
        };
        while let Some(c) = chars.get(i) {
            match c {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.alt = true,
                _ => break,
            }
            i += 1;
        }
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            spec.width = spec.width * 10 + d as usize;
            i += 1;
        }
        if chars.get(i) == Some(&'*') {
            return Err(invalid("format: `*` widths are not supported"));
        }
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = 0;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                i += 1;
            }
            spec.precision = Some(p);
        }
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let conversion = *chars
            .get(i)
            .ok_or_else(|| invalid("format: incomplete format"))?;
        i += 1;
        if conversion == '%' {
            out.push('%');
            continue;
        }
        let arg = match &key {
            Some(key) => {
                if let Some(entries) = mapping {
                    entries
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| invalid(format!("format: KeyError {key:?}")))?
                } else if let Some(map) = single_map {
                    let v = map.get_item(&Value::from(key.as_str()))?;
                    if v.is_undefined() {
                        return Err(invalid(format!("format: KeyError {key:?}")));
                    }
                    v
                } else {
                    return Err(invalid("format: format requires a mapping"));
                }
            }
            None => {
                if mapping.is_some() {
                    return Err(invalid("format: format requires a mapping"));
                }
                let v = args
                    .get(next)
                    .cloned()
                    .ok_or_else(|| invalid("format: not enough arguments for format string"))?;
                next += 1;
                v
            }
        };
        out.push_str(&convert(conversion, &spec, &arg)?);
    }
    if mapping.is_none() && single_map.is_none() && next < args.len() {
        return Err(invalid(
            "format: not all arguments converted during string formatting",
        ));
    }
    Ok(out)
}

fn number(arg: &Value, conversion: char) -> Result<f64, Error> {
    match arg.kind() {
        ValueKind::Bool => Ok(f64::from(u8::from(arg.is_true()))),
        ValueKind::Number => f64::try_from(arg.clone()),
        _ => Err(invalid(format!(
            "format: %{conversion} format: a real number is required, not {}",
            python_type(arg)
        ))),
    }
}

fn python_type(arg: &Value) -> &'static str {
    match arg.kind() {
        ValueKind::String => "str",
        ValueKind::None => "NoneType",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        ValueKind::Undefined => "Undefined",
        _ => "object",
    }
}

fn integer_of(arg: &Value, conversion: char) -> Result<i128, Error> {
    match arg.kind() {
        ValueKind::Bool => Ok(i128::from(arg.is_true())),
        ValueKind::Number if arg.is_integer() => i128::try_from(arg.clone()),
        ValueKind::Number => {
            let f = number(arg, conversion)?;
            if !f.is_finite() {
                return Err(invalid(
                    "format: cannot convert float infinity or NaN to integer",
                ));
            }
            Ok(f.trunc() as i128)
        }
        _ => Err(invalid(format!(
            "format: %{conversion} format: a real number is required, not {}",
            python_type(arg)
        ))),
    }
}

fn convert(conversion: char, spec: &Spec, arg: &Value) -> Result<String, Error> {
    let (sign, body, numeric) = match conversion {
        's' | 'r' | 'a' => {
            let mut text = if conversion == 's' {
                python_str(arg)
            } else {
                python_repr(arg)
            };
            if conversion == 'a' && !text.is_ascii() {
                return Err(invalid("format: %a of non-ASCII text is not supported"));
            }
            if let Some(p) = spec.precision {
                text = text.chars().take(p).collect();
            }
            (String::new(), text, false)
        }
        'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
            if matches!(conversion, 'x' | 'X' | 'o') && as_float(arg).is_some() {
                return Err(invalid(format!(
                    "format: %{conversion} format: an integer is required, not float"
                )));
            }
            let n = integer_of(arg, conversion)?;
            let magnitude = n.unsigned_abs();
            let mut digits = match conversion {
                'x' => format!("{magnitude:x}"),
                'X' => format!("{magnitude:X}"),
                'o' => format!("{magnitude:o}"),
                _ => magnitude.to_string(),
            };
            if let Some(p) = spec.precision
                && digits.len() < p
            {
                digits = format!("{}{digits}", "0".repeat(p - digits.len()));
            }
            if spec.alt {
                digits = match conversion {
                    'x' => format!("0x{digits}"),
                    'X' => format!("0X{digits}"),
                    'o' => format!("0o{digits}"),
                    _ => digits,
                };
            }
            (sign_of(n < 0, spec), digits, true)
        }
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
            let f = number(arg, conversion)?;
            let body = float_body(f.abs(), conversion, spec.precision.unwrap_or(6), spec.alt);
            (
                sign_of(f.is_sign_negative() && !f.is_nan(), spec),
                body,
                true,
            )
        }
        'c' => {
            let c = match arg.kind() {
                ValueKind::String => {
                    let s = arg.as_str().unwrap_or_default();
                    let mut it = s.chars();
                    match (it.next(), it.next()) {
                        (Some(c), None) => c,
                        _ => {
                            return Err(invalid(
                                "format: %c requires an int or a unicode character",
                            ));
                        }
                    }
                }
                _ => u32::try_from(integer_of(arg, 'c')?)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| invalid("format: %c arg not in range(0x110000)"))?,
            };
            (String::new(), c.to_string(), false)
        }
        other => {
            return Err(invalid(format!(
                "format: unsupported format character {other:?}"
            )));
        }
    };
    let len = sign.chars().count() + body.chars().count();
    let pad = spec.width.saturating_sub(len);
    Ok(if spec.left {
        format!("{sign}{body}{}", " ".repeat(pad))
    } else if spec.zero && numeric && body.chars().all(|c| c != 'n' && c != 'i') {
        // Zero padding goes after the sign (and after a 0x prefix).
        match body
            .strip_prefix("0x")
            .or_else(|| body.strip_prefix("0X"))
            .or_else(|| body.strip_prefix("0o"))
        {
            Some(rest) if spec.alt => format!("{sign}{}{}{rest}", &body[..2], "0".repeat(pad)),
            _ => format!("{sign}{}{body}", "0".repeat(pad)),
        }
    } else {
        format!("{}{sign}{body}", " ".repeat(pad))
    })
}

fn sign_of(negative: bool, spec: &Spec) -> String {
    if negative {
        "-".into()
    } else if spec.plus {
        "+".into()
    } else if spec.space {
        " ".into()
    } else {
        String::new()
    }
}

/// The digits of a non-negative float under `%f`, `%e` or `%g`.
fn float_body(f: f64, conversion: char, precision: usize, alt: bool) -> String {
    if f.is_nan() {
        return if conversion.is_uppercase() {
            "NAN"
        } else {
            "nan"
        }
        .into();
    }
    if f.is_infinite() {
        return if conversion.is_uppercase() {
            "INF"
        } else {
            "inf"
        }
        .into();
    }
    let upper = conversion.is_uppercase();
    let body = match conversion.to_ascii_lowercase() {
        'f' => {
            let mut s = format!("{f:.precision$}");
            if alt && precision == 0 {
                s.push('.');
            }
            s
        }
        'e' => exponent_form(f, precision, alt),
        _ => {
            let p = precision.max(1);
            let e_form = format!("{f:.prec$e}", prec = p - 1);
            let exponent: i32 = e_form
                .split_once('e')
                .and_then(|(_, e)| e.parse().ok())
                .unwrap_or(0);
            let mut s = if (-4..p as i32).contains(&exponent) {
                format!("{f:.prec$}", prec = (p as i32 - 1 - exponent) as usize)
            } else {
                exponent_form(f, p - 1, alt)
            };
            if !alt {
                s = strip_fraction_zeros(&s);
            }
            s
        }
    };
    if upper { body.to_uppercase() } else { body }
}

/// `1.500000e+03`: Python's exponent has a sign and at least two digits.
fn exponent_form(f: f64, precision: usize, alt: bool) -> String {
    let s = format!("{f:.precision$e}");
    let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let dot = if alt && precision == 0 { "." } else { "" };
    let sign = if exponent < 0 { '-' } else { '+' };
    let mut out = String::new();
    let _ = write!(out, "{mantissa}{dot}e{sign}{:02}", exponent.abs());
    out
}

fn strip_fraction_zeros(s: &str) -> String {
    let (number, exponent) = match s.find('e') {
        Some(at) => (&s[..at], &s[at..]),
        None => (s, ""),
    };
    let number = if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    };
    format!("{number}{exponent}")
}
