//! Filter arguments the way Python binds them: by position or by keyword. Reading a
//! minijinja `Kwargs` records every looked-up name in a hash set, which made `tojson`
//! several times slower than a builtin filter; here keywords are consulted only when the
//! call passed some.

use minijinja::value::{Kwargs, Rest};
use minijinja::{Error, ErrorKind, Value};

pub struct CallArgs {
    filter: &'static str,
    positional: Vec<Value>,
    kwargs: Option<Kwargs>,
}

impl CallArgs {
    pub fn new(filter: &'static str, args: Rest<Value>, kwargs: Kwargs) -> CallArgs {
        let given = kwargs.args().next().is_some();
        CallArgs {
            filter,
            positional: args.0,
            kwargs: given.then_some(kwargs),
        }
    }

    /// The argument at `index`, or named `name`; the keyword wins.
    pub fn get(&self, index: usize, name: &str) -> Result<Option<Value>, Error> {
        if let Some(kwargs) = &self.kwargs
            && let Some(value) = kwargs.get::<Option<Value>>(name)?
        {
            return Ok(Some(value));
        }
        Ok(self.positional.get(index).cloned())
    }

    pub fn get_bool(&self, index: usize, name: &str) -> Result<bool, Error> {
        Ok(self.get(index, name)?.is_some_and(|v| v.is_true()))
    }

    /// Fails on arguments the filter does not take, as Python would.
    pub fn finish(self, max_positional: usize) -> Result<(), Error> {
        if self.positional.len() > max_positional {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("{} takes at most {max_positional} arguments", self.filter),
            ));
        }
        match self.kwargs {
            Some(kwargs) => kwargs.assert_all_used(),
            None => Ok(()),
        }
    }
}
