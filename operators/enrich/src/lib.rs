//! `enrich`: a keyed two-input join. Input 1 carries events, input 2
//! reference data, both keyed by the same key (`partition: hash` on both
//! edges). The first reference value seen for a key is its label; each event
//! is emitted as `<event value>|<label>` with the event's key and timestamp.
//!
//! Events that arrive before their key's label wait in keyed list state and
//! are emitted when it arrives; events of a key that never gets a label are
//! dropped at the end. Because the label is the *first* reference value of
//! its key, the output does not depend on how the two inputs interleave.

use weir_sdk::prelude::*;

/// The join's state, per key.
struct Enrich {
    label: ValueState<String>,
    waiting: ListState<(String, Option<i64>)>,
}

impl TwoInputOperator for Enrich {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        Ok(Enrich {
            label: ctx.value_state("label"),
            waiting: ctx.list_state("waiting"),
        })
    }

    fn process_first(&mut self, e: Element<'_>, ctx: &mut Context) {
        let value = e.value_str().unwrap_or_default();
        match self.label.get() {
            Some(label) => ctx.emit(e.key, format!("{value}|{label}").as_bytes(), e.timestamp),
            None => self.waiting.add(&(value.to_owned(), e.timestamp)),
        }
    }

    fn process_second(&mut self, e: Element<'_>, ctx: &mut Context) {
        if self.label.get().is_some() {
            return;
        }
        let label = e.value_str().unwrap_or_default().to_owned();
        for (value, ts) in self.waiting.get() {
            ctx.emit(e.key, format!("{value}|{label}").as_bytes(), ts);
        }
        self.waiting.clear();
        self.label.set(&label);
    }
}

export_two_input_operator!(Enrich);
