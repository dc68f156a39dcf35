//! A minijinja environment that renders driver templates the way Python's Jinja2 3.x does
//! with its default settings: values print as Python prints them (`True`, `None`,
//! `['a', 'b']`), `tojson` is Jinja2's (sorted keys, `", "` separators, ASCII-only output,
//! HTML-sensitive characters escaped), Python methods such as `.items()` and `.get()` work,
//! and printing an undefined value yields an empty string.
//!
//! Known differences, documented for driver authors in docs/drivers.md: `~` prints floats
//! that Python writes with an exponent in positional form; unary `+`, Python `%` formatting
//! and Markup's escaping `+` are not available.

mod args;
mod filters;
mod globals;
mod methods;
mod numbers;
pub mod refuse;
pub mod slices;
mod styrmin;
mod text;
mod tojson;

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// The environment used for every values template.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(|out, state, value| {
        // Inside `{% autoescape true %}` text that is not marked safe is escaped, as
        // Jinja2's Markup escapes it.
        if !matches!(state.auto_escape(), AutoEscape::None) && !value.is_safe() {
            out.write_str(&text::html_escape(&python_str(value)))?;
            return Ok(());
        }
        match value.kind() {
            ValueKind::Undefined => {}
            ValueKind::String => out.write_str(value.as_str().unwrap_or_default())?,
            ValueKind::Number if as_float(value).is_none() => write!(out, "{value}")?,
            _ => out.write_str(&python_repr(value))?,
        }
        Ok(())
    });
    env.add_filter("tojson", tojson::tojson);
    env.add_filter("string", |value: &Value| {
        text::keep_safe(value, python_str(value))
    });
    filters::register(&mut env);
    text::register(&mut env);
    numbers::register(&mut env);
    globals::register(&mut env);
    env.add_filter("component_env_vars", styrmin::component_env_vars);
    env.add_filter("component_command", styrmin::component_command);
    env.add_filter("component_args", styrmin::component_args);
    env
}

/// `str(value)` in Python.
pub fn python_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        ValueKind::Undefined => String::new(),
        _ => python_repr(value),
    }
}

/// `repr(value)` in Python: how values print inside lists and dicts.
pub fn python_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value);
    out
}

/// `pprint.pformat(value)` for values that fit on one line: dict keys sorted.
pub fn python_repr_sorted(value: &Value) -> String {
    let mut out = String::new();
    write_repr_with(&mut out, value, true);
    out
}

fn write_repr(out: &mut String, value: &Value) {
    write_repr_with(out, value, false)
}

fn write_repr_with(out: &mut String, value: &Value, sort_keys: bool) {
    let write_repr = |out: &mut String, value: &Value| write_repr_with(out, value, sort_keys);
    match value.kind() {
        ValueKind::Undefined => out.push_str("Undefined"),
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => match as_float(value) {
            Some(f) => out.push_str(&python_float(f)),
            None => {
                let _ = write!(out, "{value}");
            }
        },
        // Text marked safe is Jinja2's Markup, whose repr says so.
        ValueKind::String if value.is_safe() => {
            out.push_str("Markup(");
            out.push_str(&python_repr_str(value.as_str().unwrap_or_default()));
            out.push(')');
        }
        ValueKind::String => out.push_str(&python_repr_str(value.as_str().unwrap_or_default())),
        ValueKind::Seq if value.downcast_object_ref::<filters::PyTuple>().is_some() => {
            let items = &value
                .downcast_object_ref::<filters::PyTuple>()
                .expect("checked")
                .0;
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        ValueKind::Iterable if value.downcast_object_ref::<methods::DictView>().is_some() => {
            let view = value
                .downcast_object_ref::<methods::DictView>()
                .expect("checked");
            out.push_str(&methods::view_repr(view));
        }
        ValueKind::Seq if value.downcast_object_ref::<globals::PyRange>().is_some() => {
            let range = value
                .downcast_object_ref::<globals::PyRange>()
                .expect("checked");
            out.push_str(&range.repr());
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(items) = value.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &item);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(keys) = value.try_iter() {
                let mut keys: Vec<Value> = keys.collect();
                if sort_keys {
                    keys.sort();
                }
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &key);
                    out.push_str(": ");
                    write_repr(out, &value.get_item(&key).unwrap_or_default());
                }
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{value}");
        }
    }
}

/// Floats and integers are both `Number`s in minijinja.
pub(crate) fn as_float(value: &Value) -> Option<f64> {
    if value.kind() != ValueKind::Number || value.is_integer() {
        return None;
    }
    f64::try_from(value.clone()).ok()
}

/// Python's `repr(float)`: the shortest round-tripping digits, positional between 1e-4 and
/// 1e16, scientific (`1e-07`, `1.5e+16`) outside.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let (negative, digits, exponent) = shortest_digits(f);
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        // Positional: digits d1 d2 … with the point after position exponent + 1.
        let point = exponent + 1;
        let mut out = String::from(sign);
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
        out
    } else {
        let mantissa = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs())
    }
}

/// The sign, the significant digits and the decimal exponent of Python's repr of `f`: the
/// fewest digits that read back as `f`, correctly rounded. Rust's shortest form has as few
/// digits but may break a tie upwards (`1428571428571428.3` for the float whose exact value
/// ends in `.25`), where Python rounds the exact value to that many digits, half to even
/// (`1428571428571428.2`).
fn shortest_digits(f: f64) -> (bool, String, i32) {
    let split = |text: &str| -> (bool, String, i32) {
        let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
        let negative = mantissa.starts_with('-');
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        (negative, digits, exponent.parse().unwrap_or(0))
    };
    let shortest = split(&format!("{f:e}"));
    let precision = shortest.1.len().saturating_sub(1);
    // `{:.N e}` rounds the exact binary value, half to even.
    let rounded_text = format!("{f:.precision$e}");
    match rounded_text.parse::<f64>() {
        Ok(back) if back == f => split(&rounded_text),
        _ => shortest,
    }
}

/// Whether minijinja's error detail is an integer result beyond its 128-bit integers
/// (`unable to calculate A + B`, `-`, `*`, `**` with a non-negative exponent, or a negation):
/// Python computes those exactly. Division by zero and `0 ** -1` fail in Python too.
pub(crate) fn is_integer_overflow(detail: &str) -> bool {
    let Some(operation) = detail.strip_prefix("unable to calculate ") else {
        return false;
    };
    let parts: Vec<&str> = operation.split(' ').collect();
    let is_int = |s: &str| {
        let digits = s.strip_prefix('-').unwrap_or(s);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    match parts.as_slice() {
        [lhs, op, rhs] if is_int(lhs) && is_int(rhs) => {
            matches!(*op, "+" | "-" | "*") || (*op == "**" && !rhs.starts_with('-'))
        }
        [negation] => negation.strip_prefix('-').is_some_and(is_int),
        _ => false,
    }
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and no double one.
pub fn python_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !python_printable(c) => {
                if (c as u32) <= 0xffff {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The non-ASCII characters Python's `str.isprintable` rejects that drivers may meet:
/// separators, format characters and private-use or unassigned planes.
fn python_printable(c: char) -> bool {
    !matches!(c as u32,
        0x1680 | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x206f | 0x3000
        | 0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff | 0xd800..=0xdfff
        | 0xf0000..=0x10ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, ctx: serde_json::Value) -> String {
        environment()
            .render_str(template, Value::from(minijinja::value::Serde(ctx)))
            .unwrap()
    }

    #[test]
    fn values_print_as_python_prints_them() {
        let ctx =
            json!({"t": true, "n": null, "l": ["a", 1, false, 0.5], "m": {"k": "it's"}, "f": 1.0});
        assert_eq!(
            render(
                "{{ t }} {{ n }} {{ l }} {{ m }} {{ f }} [{{ missing }}]",
                ctx
            ),
            r#"True None ['a', 1, False, 0.5] {'k': "it's"} 1.0 []"#
        );
    }

    /// The one known difference of `~` from Jinja2, pinned so a change of minijinja shows up
    /// here: a float that Python prints with an exponent (`1e-07`) is concatenated in
    /// positional form. docs/drivers.md tells authors to write `f | string` instead.
    #[test]
    fn tilde_prints_exponent_floats_positionally() {
        let ctx = json!({"t": true, "n": null, "f": 1e-7, "l": ["a"]});
        assert_eq!(
            render("{{ t ~ n ~ '|' ~ f ~ '|' ~ l }}", ctx.clone()),
            "TrueNone|0.0000001|['a']"
        );
        assert_eq!(render("{{ 'x' ~ f | string }}", ctx), "x1e-07");
    }

    #[test]
    fn python_float_repr_switches_to_exponents_like_python() {
        assert_eq!(python_float(1e-7), "1e-07");
        assert_eq!(python_float(0.0001), "0.0001");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(123456789012345.0), "123456789012345.0");
        assert_eq!(python_float(-2.5), "-2.5");
        assert_eq!(python_float(1.5e300), "1.5e+300");
        // Where two shortest forms are equally close, Python takes the correctly rounded
        // one (the exact value ends in .25 here: half to even gives .2, Rust's form .3).
        assert_eq!(python_float(9999999999999998.0 / 7.0), "1428571428571428.2");
        assert_eq!(python_float(1111111101111110.2), "1111111101111110.2");
        for (f, repr) in [
            (0.1 + 0.2, "0.30000000000000004"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (2.5e-5, "2.5e-05"),
            (1e15, "1000000000000000.0"),
            (1e22, "1e+22"),
            (0.3, "0.3"),
        ] {
            assert_eq!(python_float(f), repr);
        }
    }

    #[test]
    fn tojson_matches_jinja2_byte_for_byte() {
        let ctx = json!({"v": {"b": "<a href='x'>&</a>", "a": ["é", "😀", 1, true, null]}});
        assert_eq!(
            render("{{ v | tojson }}", ctx.clone()),
            r#"{"a": ["\u00e9", "\ud83d\ude00", 1, true, null], "b": "\u003ca href=\u0027x\u0027\u003e\u0026\u003c/a\u003e"}"#
        );
        assert_eq!(
            render("{{ v.a[:2] | tojson(indent=2) }}", ctx),
            "[\n  \"\\u00e9\",\n  \"\\ud83d\\ude00\"\n]"
        );
    }

    #[test]
    fn tojson_of_an_undefined_value_is_an_error() {
        let err = environment()
            .render_str(
                "{{ nope | tojson }}",
                Value::from(minijinja::value::Serde(json!({}))),
            )
            .unwrap_err();
        assert!(err.to_string().contains("undefined"), "{err}");
    }

    #[test]
    fn styrmin_filters_read_component_settings() {
        let ctx = json!({"components": {"server": {"env_vars": [{"name": "A", "value": "1"}], "command": ["run"], "args": []}}});
        assert_eq!(
            render(
                "{{ components | component_env_vars('server') | tojson }} {{ components | component_command('server') | tojson }} {{ components | component_args('server') | tojson }}",
                ctx.clone()
            ),
            r#"[{"name": "A", "value": "1"}] ["run"] []"#
        );
        let err = environment()
            .render_str(
                "{{ components | component_args('srever') }}",
                Value::from(minijinja::value::Serde(ctx)),
            )
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("no component `srever`"),
            "{err:#}"
        );
    }

    #[test]
    fn python_methods_work_on_maps_and_strings() {
        let ctx = json!({"m": {"a": 1, "b": 2}, "s": "Hello"});
        assert_eq!(
            render(
                "{% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %}{{ m.get('z', 'none') }} {{ s.upper() }}",
                ctx
            ),
            "a=1;b=2;none HELLO"
        );
    }
}
