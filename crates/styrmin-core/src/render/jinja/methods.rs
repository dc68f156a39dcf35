//! Python methods templates call on values (`s.zfill(3)`, `d.copy()`, `l.index(x)`), beyond
//! those minijinja-contrib's pycompat provides. Methods that change a list or a dict in place
//! cannot work on minijinja's immutable values: they are refused with the way to write the
//! same thing instead of silently doing nothing.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, ValueKind};
use minijinja::{Error, ErrorKind, State, Value};

use super::filters::PyTuple;

pub fn call(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if method == super::slices::METHOD {
        return super::slices::call(value, args);
    }
    let result = call_unmarked(state, value, method, args)?;
    // MarkupSafe's Markup returns Markup from its text methods (lists and tuples of Markup
    // from the splitting ones).
    const MARKUP_METHODS: &[&str] = &[
        "capitalize",
        "title",
        "lower",
        "upper",
        "replace",
        "ljust",
        "rjust",
        "lstrip",
        "rstrip",
        "center",
        "strip",
        "expandtabs",
        "swapcase",
        "zfill",
        "removeprefix",
        "removesuffix",
        "split",
        "rsplit",
        "splitlines",
        "partition",
        "rpartition",
        "format",
    ];
    if value.kind() == ValueKind::String && value.is_safe() && MARKUP_METHODS.contains(&method) {
        return Ok(mark_safe(result));
    }
    Ok(result)
}

fn mark_safe(value: Value) -> Value {
    match value.kind() {
        ValueKind::String => Value::from_safe_string(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Seq if value.downcast_object_ref::<PyTuple>().is_some() => {
            let items = &value.downcast_object_ref::<PyTuple>().expect("checked").0;
            Value::from_object(PyTuple(items.iter().cloned().map(mark_safe).collect()))
        }
        ValueKind::Seq => match value.try_iter() {
            Ok(items) => Value::from(items.map(mark_safe).collect::<Vec<_>>()),
            Err(_) => value,
        },
        _ => value,
    }
}

fn call_unmarked(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    // `Markup.replace(old, new)` escapes the replacement text.
    if value.kind() == ValueKind::String && value.is_safe() && method == "replace" {
        let escaped: Vec<Value> = args
            .iter()
            .enumerate()
            .map(|(i, a)| match a.kind() {
                ValueKind::String if i == 1 && !a.is_safe() => {
                    Value::from(super::text::html_escape(a.as_str().unwrap_or_default()))
                }
                _ => a.clone(),
            })
            .collect();
        let plain = Value::from(value.as_str().unwrap_or_default());
        return minijinja_contrib::pycompat::unknown_method_callback(
            state, &plain, method, &escaped,
        );
    }
    // `Markup.join(items)` escapes each item that is not Markup (any value: `escape(1)`).
    if value.kind() == ValueKind::String && value.is_safe() && method == "join" {
        let items = one_arg(method, args)?;
        let pieces: Vec<String> = items
            .try_iter()?
            .map(|item| {
                if item.kind() == ValueKind::String && item.is_safe() {
                    item.as_str().unwrap_or_default().to_owned()
                } else {
                    super::text::html_escape(&super::python_str(&item))
                }
            })
            .collect();
        return Ok(Value::from_safe_string(
            pieces.join(value.as_str().unwrap_or_default()),
        ));
    }
    match value.kind() {
        ValueKind::String => {
            if let Some(result) = string_method(value.as_str().unwrap_or_default(), method, args)? {
                return Ok(result);
            }
        }
        ValueKind::Map => match method {
            "items" | "keys" | "values" => {
                no_args(method, args)?;
                return view(value, method);
            }
            "copy" => {
                no_args(method, args)?;
                return Ok(value.clone());
            }
            "update" | "setdefault" | "pop" | "popitem" | "clear" => {
                return Err(in_place("dict", method));
            }
            _ => {}
        },
        ValueKind::Seq => match method {
            "index" => {
                let wanted = one_arg(method, args)?;
                return value
                    .try_iter()?
                    .position(|item| item == *wanted)
                    .map(Value::from)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidOperation,
                            format!(
                                "list.index(): {} is not in list",
                                super::python_repr(wanted)
                            ),
                        )
                    });
            }
            "copy" => {
                no_args(method, args)?;
                return Ok(Value::from(value.try_iter()?.collect::<Vec<_>>()));
            }
            "append" | "extend" | "insert" | "remove" | "pop" | "sort" | "reverse" | "clear" => {
                return Err(in_place("list", method));
            }
            _ => {}
        },
        _ => {}
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn in_place(kind: &str, method: &str) -> Error {
    let instead = if kind == "list" {
        "build a new list instead: `{% set ns.items = ns.items + [item] %}` with a namespace, or filters such as `map`, `select`, `sort`"
    } else {
        "build a new dict instead: `{% set d = dict(d, key=value) %}`"
    };
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{kind}.{method}() is not supported: values cannot be changed in place; {instead}"),
    )
}

fn no_args(method: &str, args: &[Value]) -> Result<(), Error> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::TooManyArguments,
            format!("{method}() takes no arguments"),
        ))
    }
}

fn one_arg<'a>(method: &str, args: &'a [Value]) -> Result<&'a Value, Error> {
    match args {
        [arg] => Ok(arg),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{method}() takes exactly one argument"),
        )),
    }
}

fn str_arg(method: &str, value: &Value) -> Result<String, Error> {
    value.as_str().map(str::to_owned).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{method}(): the argument must be a string"),
        )
    })
}

fn int_arg(method: &str, value: &Value) -> Result<i64, Error> {
    if value.kind() == ValueKind::Number && value.is_integer() {
        return i64::try_from(value.clone());
    }
    if value.kind() == ValueKind::Bool {
        return Ok(i64::from(value.is_true()));
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{method}(): the argument must be an integer"),
    ))
}

/// The fill character of `ljust`/`rjust`/`center`: exactly one character, a space by default.
fn fill_arg(method: &str, args: &[Value]) -> Result<(usize, char), Error> {
    let (width, fill) = match args {
        [width] => (width, None),
        [width, fill] => (width, Some(fill)),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{method}() takes a width and an optional fill character"),
            ));
        }
    };
    let width = int_arg(method, width)?.max(0) as usize;
    let fill = match fill {
        None => ' ',
        Some(f) => {
            let text = str_arg(method, f)?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "{method}(): the fill character must be exactly one character long"
                        ),
                    ));
                }
            }
        }
    };
    Ok((width, fill))
}

/// Python's `str.center`: the extra space goes to the right unless the width is odd and
/// the margin is odd (CPython's `left = margin // 2 + (margin & width & 1)`).
pub fn center(text: &str, width: usize, fill: char) -> String {
    let len = text.chars().count();
    if width <= len {
        return text.to_owned();
    }
    let margin = width - len;
    let left = margin / 2 + (margin & width & 1);
    let pad = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
    format!("{}{text}{}", pad(left), pad(margin - left))
}

fn string_method(s: &str, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    let len = s.chars().count();
    let pad = |n: usize, fill: char| std::iter::repeat_n(fill, n).collect::<String>();
    Ok(Some(match method {
        "title" => {
            no_args(method, args)?;
            Value::from(super::filters::python_title(s))
        }
        "capitalize" => {
            no_args(method, args)?;
            Value::from(super::text::python_capitalize(s))
        }
        "zfill" => {
            let width = int_arg(method, one_arg(method, args)?)?.max(0) as usize;
            if width <= len {
                Value::from(s)
            } else {
                let (sign, digits) = match s.chars().next() {
                    Some(c @ ('+' | '-')) => (c.to_string(), &s[1..]),
                    _ => (String::new(), s),
                };
                Value::from(format!("{sign}{}{digits}", pad(width - len, '0')))
            }
        }
        "ljust" => {
            let (width, fill) = fill_arg(method, args)?;
            Value::from(format!("{s}{}", pad(width.saturating_sub(len), fill)))
        }
        "rjust" => {
            let (width, fill) = fill_arg(method, args)?;
            Value::from(format!("{}{s}", pad(width.saturating_sub(len), fill)))
        }
        "center" => {
            let (width, fill) = fill_arg(method, args)?;
            Value::from(center(s, width, fill))
        }
        "removeprefix" => {
            let prefix = str_arg(method, one_arg(method, args)?)?;
            Value::from(s.strip_prefix(prefix.as_str()).unwrap_or(s))
        }
        "removesuffix" => {
            let suffix = str_arg(method, one_arg(method, args)?)?;
            Value::from(s.strip_suffix(suffix.as_str()).unwrap_or(s))
        }
        "partition" | "rpartition" => {
            let sep = str_arg(method, one_arg(method, args)?)?;
            if sep.is_empty() {
                return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
            }
            let found = if method == "partition" {
                s.find(&sep)
            } else {
                s.rfind(&sep)
            };
            let parts = match found {
                Some(at) => [&s[..at], sep.as_str(), &s[at + sep.len()..]],
                None if method == "partition" => [s, "", ""],
                None => ["", "", s],
            };
            Value::from_object(PyTuple(parts.iter().map(|p| Value::from(*p)).collect()))
        }
        "index" | "rindex" => {
            let sub = str_arg(method, one_arg(method, args)?)?;
            let found = if method == "index" {
                s.find(&sub)
            } else {
                s.rfind(&sub)
            };
            match found {
                Some(at) => Value::from(s[..at].chars().count()),
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("str.{method}(): substring not found"),
                    ));
                }
            }
        }
        "rsplit" => Value::from(rsplit(s, args)?),
        "swapcase" => {
            no_args(method, args)?;
            Value::from(
                s.chars()
                    .flat_map(|c| {
                        if c.is_uppercase() {
                            c.to_lowercase().collect::<Vec<_>>()
                        } else {
                            c.to_uppercase().collect::<Vec<_>>()
                        }
                    })
                    .collect::<String>(),
            )
        }
        _ => return Ok(None),
    }))
}

/// Python's `str.rsplit(sep=None, maxsplit=-1)`.
fn rsplit(s: &str, args: &[Value]) -> Result<Vec<Value>, Error> {
    let sep = match args.first() {
        Some(v) if v.is_none() => None,
        Some(v) => Some(str_arg("rsplit", v)?),
        None => None,
    };
    let max = match args.get(1) {
        Some(v) => int_arg("rsplit", v)?,
        None => -1,
    };
    if args.len() > 2 {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            "rsplit() takes at most 2 arguments",
        ));
    }
    let limit = if max < 0 { usize::MAX } else { max as usize };
    let mut parts: Vec<String> = match sep {
        Some(sep) if sep.is_empty() => {
            return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
        }
        Some(sep) => {
            let mut parts = Vec::new();
            let mut rest = s;
            while parts.len() < limit {
                match rest.rfind(&sep) {
                    Some(at) => {
                        parts.push(rest[at + sep.len()..].to_owned());
                        rest = &rest[..at];
                    }
                    None => break,
                }
            }
            parts.push(rest.to_owned());
            parts
        }
        None => {
            let mut parts = Vec::new();
            let mut rest = s.trim_end();
            while !rest.is_empty() {
                if parts.len() == limit {
                    parts.push(rest.to_owned());
                    break;
                }
                match rest.rfind(char::is_whitespace) {
                    Some(at) => {
                        let ws = rest[at..].chars().next().map_or(1, char::len_utf8);
                        parts.push(rest[at + ws..].to_owned());
                        rest = rest[..at].trim_end();
                    }
                    None => {
                        parts.push(rest.to_owned());
                        rest = "";
                    }
                }
            }
            parts
        }
    };
    parts.reverse();
    Ok(parts.into_iter().map(Value::from).collect())
}

/// `dict.keys()`, `.values()`, `.items()`: iterate like lists, print as Python prints the
/// views (`dict_keys(['a'])`).
#[derive(Debug)]
pub struct DictView {
    pub kind: &'static str,
    pub items: Vec<Value>,
}

impl Object for DictView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.items.clone())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.items.len())
    }
}

fn view(map: &Value, method: &str) -> Result<Value, Error> {
    let mut items = Vec::new();
    for key in map.try_iter()? {
        items.push(match method {
            "keys" => key,
            "values" => map.get_item(&key)?,
            _ => Value::from_object(PyTuple(vec![key.clone(), map.get_item(&key)?])),
        });
    }
    let kind = match method {
        "keys" => "dict_keys",
        "values" => "dict_values",
        _ => "dict_items",
    };
    Ok(Value::from_object(DictView { kind, items }))
}

/// Text for `str()` of a view, e.g. `dict_keys(['a', 'b'])`.
pub fn view_repr(view: &DictView) -> String {
    let items: Vec<String> = view.items.iter().map(super::python_repr).collect();
    format!("{}([{}])", view.kind, items.join(", "))
}
