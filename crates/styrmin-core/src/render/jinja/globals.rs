//! Jinja2's global functions as Jinja2 defines them: `range` (a Python range, printed as
//! `range(0, 3)`), `cycler` (with `next()`, `reset()` and `current`), `joiner`. `lipsum` and
//! the `urlize` filter are refused: the first is random in Jinja2, the second rests on
//! regular expressions not reproduced here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use minijinja::value::{Enumerator, Object, ObjectRepr, Rest};
use minijinja::{Error, ErrorKind, State, Value};

pub fn register(env: &mut minijinja::Environment<'static>) {
    env.add_function("range", range);
    env.add_function("cycler", |items: Rest<Value>| {
        if items.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "cycler: at least one item has to be provided",
            ));
        }
        Ok(Value::from_object(Cycler {
            items: items.0,
            position: AtomicUsize::new(0),
        }))
    });
    env.add_function("joiner", |sep: Option<Value>| {
        Value::from_object(Joiner {
            sep: sep.unwrap_or_else(|| Value::from(", ")),
            used: AtomicBool::new(false),
        })
    });
    env.add_function("lipsum", |_: Rest<Value>| -> Result<Value, Error> {
        Err(unsupported("lipsum() (Jinja2 makes random text)"))
    });
    env.add_filter(
        "urlize",
        |_: Value, _: Rest<Value>| -> Result<Value, Error> {
            Err(unsupported("the urlize filter"))
        },
    );
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what} is not supported (see docs/drivers.md)"),
    )
}

/// Python's `range(start, stop, step)`; Jinja2 refuses more than 100,000 items.
#[derive(Debug)]
pub struct PyRange {
    start: i64,
    stop: i64,
    step: i64,
}

impl PyRange {
    fn len(&self) -> usize {
        let span = if self.step > 0 {
            self.stop - self.start
        } else {
            self.start - self.stop
        };
        if span <= 0 {
            0
        } else {
            ((span - 1) / self.step.abs() + 1) as usize
        }
    }

    pub fn repr(&self) -> String {
        if self.step == 1 {
            format!("range({}, {})", self.start, self.stop)
        } else {
            format!("range({}, {}, {})", self.start, self.stop, self.step)
        }
    }
}

impl Object for PyRange {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let index = i64::try_from(key.clone()).ok()?;
        let len = self.len() as i64;
        let index = if index < 0 { index + len } else { index };
        (0..len)
            .contains(&index)
            .then(|| Value::from(self.start + index * self.step))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.len())
    }
}

fn range(start: i64, stop: Option<i64>, step: Option<i64>) -> Result<Value, Error> {
    let (start, stop) = match stop {
        Some(stop) => (start, stop),
        None => (0, start),
    };
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "range() arg 3 must not be zero",
        ));
    }
    let range = PyRange { start, stop, step };
    if range.len() > 100_000 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).",
        ));
    }
    Ok(Value::from_object(range))
}

/// Jinja2's `cycler(*items)`.
#[derive(Debug)]
pub struct Cycler {
    items: Vec<Value>,
    position: AtomicUsize,
}

impl Object for Cycler {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        (key.as_str()? == "current")
            .then(|| self.items[self.position.load(Ordering::Relaxed)].clone())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if !args.is_empty() {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("cycler.{method}() takes no arguments"),
            ));
        }
        match method {
            "next" => {
                let at = self.position.load(Ordering::Relaxed);
                self.position
                    .store((at + 1) % self.items.len(), Ordering::Relaxed);
                Ok(self.items[at].clone())
            }
            "reset" => {
                self.position.store(0, Ordering::Relaxed);
                Ok(Value::from(()))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// Jinja2's `joiner(sep=', ')`: empty on the first call, the separator afterwards.
#[derive(Debug)]
pub struct Joiner {
    sep: Value,
    used: AtomicBool,
}

impl Object for Joiner {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        if !args.is_empty() {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                "joiner() takes no arguments",
            ));
        }
        Ok(if self.used.swap(true, Ordering::Relaxed) {
            self.sep.clone()
        } else {
            Value::from("")
        })
    }
}
