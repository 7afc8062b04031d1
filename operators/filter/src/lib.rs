//! `filter`: keeps the elements that match a predicate from its config.
//!
//! Config:
//! - `field`: `value` (default), `key`, or `header:<name>`: the value of
//!   the record's last header of that name, for elements from a Kafka
//!   source with `headers: true` (an element without that header, or whose
//!   value is not a record envelope, does not match; `value` is then the
//!   whole envelope);
//! - `op`: `equals`, `not-equals`, `contains`, `starts-with`, `ends-with`
//!   (text), or `gt`, `ge`, `lt`, `le` (numbers: the field is parsed as a
//!   decimal number; elements where it is not one are dropped);
//! - `operand`: the text or number to compare with;
//! - `negate`: `true` keeps the elements that do *not* match.
//!
//! A bad config fails `open` with a message that names the key.

use weir_sdk::kafka::EnvelopeRef;
use weir_sdk::prelude::*;

#[derive(Debug)]
enum Predicate {
    Equals(String),
    NotEquals(String),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Compare(std::cmp::Ordering, bool, f64),
}

impl Predicate {
    fn parse(op: &str, operand: &str) -> Result<Self, String> {
        use std::cmp::Ordering::{Greater, Less};
        let number = || {
            operand
                .trim()
                .parse::<f64>()
                .map_err(|e| format!("config key `operand`: {operand:?} is not a number: {e}"))
        };
        Ok(match op {
            "equals" => Predicate::Equals(operand.to_owned()),
            "not-equals" => Predicate::NotEquals(operand.to_owned()),
            "contains" => Predicate::Contains(operand.to_owned()),
            "starts-with" => Predicate::StartsWith(operand.to_owned()),
            "ends-with" => Predicate::EndsWith(operand.to_owned()),
            "gt" => Predicate::Compare(Greater, false, number()?),
            "ge" => Predicate::Compare(Greater, true, number()?),
            "lt" => Predicate::Compare(Less, false, number()?),
            "le" => Predicate::Compare(Less, true, number()?),
            other => {
                return Err(format!(
                    "config key `op`: unknown operator {other:?} (expected equals, not-equals, \
                     contains, starts-with, ends-with, gt, ge, lt or le)"
                ));
            }
        })
    }

    fn matches(&self, field: &str) -> bool {
        match self {
            Predicate::Equals(s) => field == s,
            Predicate::NotEquals(s) => field != s,
            Predicate::Contains(s) => field.contains(s.as_str()),
            Predicate::StartsWith(s) => field.starts_with(s.as_str()),
            Predicate::EndsWith(s) => field.ends_with(s.as_str()),
            Predicate::Compare(ord, or_equal, n) => match field.trim().parse::<f64>() {
                Ok(v) => v
                    .partial_cmp(n)
                    .is_some_and(|o| o == *ord || (*or_equal && o.is_eq())),
                Err(_) => false,
            },
        }
    }
}

/// The part of an element a predicate looks at.
#[derive(Debug)]
enum Field {
    Value,
    Key,
    Header(String),
}

impl Field {
    fn parse(field: &str) -> Result<Self, String> {
        match field {
            "value" => Ok(Field::Value),
            "key" => Ok(Field::Key),
            other => match other.strip_prefix("header:") {
                Some(name) if !name.is_empty() => Ok(Field::Header(name.to_owned())),
                _ => Err(format!(
                    "config key `field`: expected `key`, `value` or `header:<name>`, got {other:?}"
                )),
            },
        }
    }

    /// The field of `e`; `None` when it has no such header.
    fn of<'a>(&self, e: &Element<'a>) -> Option<&'a [u8]> {
        match self {
            Field::Value => Some(e.value),
            Field::Key => Some(e.key.unwrap_or_default()),
            Field::Header(name) => EnvelopeRef::read(e.value).ok()?.header(name),
        }
    }
}

/// Keeps matching elements.
struct Filter {
    field: Field,
    predicate: Predicate,
    negate: bool,
}

impl Operator for Filter {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        let field = Field::parse(ctx.get("field").unwrap_or("value"))?;
        let predicate = Predicate::parse(ctx.require("op")?, ctx.require("operand")?)?;
        let negate = ctx.parse::<bool>("negate")?.unwrap_or(false);
        Ok(Filter {
            field,
            predicate,
            negate,
        })
    }

    fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
        let matches = self
            .field
            .of(&e)
            .is_some_and(|bytes| self.predicate.matches(&String::from_utf8_lossy(bytes)));
        if matches != self.negate {
            ctx.emit(e.key, e.value, e.timestamp);
        }
    }
}

export_operator!(Filter);
