//! Write Weir stream operators in Rust.
//!
//! An operator is a struct and one `impl` of [`Operator`]; the
//! [`export_operator!`] macro turns it into a WebAssembly component that
//! implements the `weir:operator/operator` world (`wit/operator.wit`).
//! Durable state lives in typed handles ([`ValueState`], [`ListState`],
//! [`MapState`]) that the host stores and snapshots: an operator never
//! writes snapshot code.
//!
//! ```no_run
//! use weir_sdk::prelude::*;
//!
//! /// Emits the running count of each key.
//! struct Count {
//!     count: ValueState<u64>,
//! }
//!
//! impl Operator for Count {
//!     fn open(ctx: &mut OpenContext) -> Result<Self, String> {
//!         Ok(Count { count: ctx.value_state("count") })
//!     }
//!
//!     fn process(&mut self, element: Element<'_>, ctx: &mut Context) {
//!         let n = self.count.get().unwrap_or(0) + 1;
//!         self.count.set(&n);
//!         ctx.emit(element.key, n.to_string().as_bytes(), element.timestamp);
//!     }
//! }
//!
//! export_operator!(Count);
//! ```
//!
//! Build it with `cargo build --profile guest --target wasm32-wasip2`; the
//! component is `target/wasm32-wasip2/guest/<crate>.wasm`.
//!
//! What this crate is not: a runtime. It does not decide when state is
//! checkpointed, how keys are partitioned or when timers fire; the host does.
//!
//! Start with [`Operator`], then [`OpenContext`] (config and state
//! declaration) and [`Context`] (emit, timers). [`windows`] builds event-time
//! windows from those parts; [`codec`] says how state values are encoded;
//! [`kafka`] reads and writes the headers of Kafka records.

pub mod codec;
mod context;
mod export;
pub mod kafka;
mod operator;
mod runtime;
mod state;
pub mod windows;

pub use context::{
    Context, Counter, Element, Gauge, Level, OpenContext, TimeDomain, Timer, TtlStates,
};
pub use operator::{Operator, TwoInputOperator};
pub use state::{
    Aggregate, AggregatingState, ListState, MapState, OperatorListState, ReducingState, ValueState,
};

/// Everything an operator usually needs, in one `use`.
pub mod prelude {
    pub use crate::windows::{
        Added, SessionWindowedValue, SlidingWindows, TumblingWindows, Window, WindowedValue,
    };
    pub use crate::{
        Aggregate, AggregatingState, Context, Counter, Element, Gauge, Level, ListState, MapState,
        OpenContext, Operator, OperatorListState, ReducingState, TimeDomain, Timer,
        TwoInputOperator, ValueState,
    };
    pub use crate::{export_operator, export_two_input_operator};
}

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "operator",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "weir_sdk::__bindings",
    });
}

#[doc(hidden)]
pub use runtime::exports as __runtime;
