//! The traits an operator implements: [`Operator`] (one input) or
//! [`TwoInputOperator`] (two inputs, such as a keyed join).

use crate::{Context, Element, OpenContext, Timer};

/// A stream operator: one instance per subtask.
///
/// The host calls [`Operator::open`] once, then [`Operator::process`] for
/// every element (in batches, which the SDK hides), [`Operator::on_timer`]
/// for every timer that fires, and [`Operator::close`] at the end of input.
/// A panic anywhere fails the task with the panic message; the job's restart
/// strategy decides what happens next.
pub trait Operator: Sized + 'static {
    /// Reads the config and declares state; an `Err` fails the job with
    /// that message.
    fn open(ctx: &mut OpenContext) -> Result<Self, String>;

    /// Handles one element. On a keyed input, state handles read and write
    /// the state of `element.key`.
    fn process(&mut self, element: Element<'_>, ctx: &mut Context);

    /// Handles a timer that fired; state handles see the timer's key.
    fn on_timer(&mut self, timer: Timer<'_>, ctx: &mut Context) {
        let _ = (timer, ctx);
    }

    /// Called once at the end of input, after every event-time timer fired
    /// (pending processing-time timers are dropped). Keyed state and timers
    /// are not available here; emitting is.
    fn close(&mut self, ctx: &mut Context) {
        let _ = ctx;
    }
}

/// An operator with two inputs, such as a keyed join or an enrichment:
/// edges into it name `input: 1` or `input: 2`. On keyed inputs both sides
/// see the same key's state, so one side can store what the other needs.
/// Export it with [`crate::export_two_input_operator!`].
pub trait TwoInputOperator: Sized + 'static {
    /// Reads the config and declares state; an `Err` fails the job with
    /// that message.
    fn open(ctx: &mut OpenContext) -> Result<Self, String>;

    /// Handles one element of the first input.
    fn process_first(&mut self, element: Element<'_>, ctx: &mut Context);

    /// Handles one element of the second input.
    fn process_second(&mut self, element: Element<'_>, ctx: &mut Context);

    /// Handles a timer that fired; state handles see the timer's key.
    fn on_timer(&mut self, timer: Timer<'_>, ctx: &mut Context) {
        let _ = (timer, ctx);
    }

    /// Called once when both inputs have ended.
    fn close(&mut self, ctx: &mut Context) {
        let _ = ctx;
    }
}
