"""Weir's Python SDK: write a stream operator as a Python class, build it
into a WebAssembly component with componentize-py, and run it in Weir.

    from weir_sdk import Operator, codec, export_operator

    class Count(Operator):
        def __init__(self, ctx):
            self.count = ctx.value_state("count", codec.U64, ttl_ms=ctx.parse("ttl-ms"))

        def process(self, e, ctx):
            n = self.count.update(lambda n: (n or 0) + 1)
            ctx.emit(e.key, str(n).encode(), e.timestamp)

    Handler = export_operator(Count)

The host calls ``__init__`` once per subtask (``open``), ``process`` for
every element (in batches, which the SDK hides: the batch is decoded here,
the value state of its keys arrives with it, and output leaves in one host
call), ``on_timer`` for every timer that fires, and ``close`` at the end of
input. State values are encoded with :mod:`weir_sdk.codec`, the bytes the
Rust SDK writes, so state moves between languages. An exception fails the
task (its traceback goes to the job's log); raising :class:`OpenError` in
``__init__`` fails ``open`` with its message.
"""

from types import SimpleNamespace

from . import codec
from .context import Context, Element, Level, OpenContext, OpenError, TimeDomain, Timer, log
from .runtime import RUNTIME
from .state import Aggregate, StateDecodeError

__all__ = [
    "Aggregate",
    "Context",
    "Element",
    "Level",
    "OpenContext",
    "OpenError",
    "Operator",
    "StateDecodeError",
    "TimeDomain",
    "Timer",
    "TwoInputOperator",
    "codec",
    "export_operator",
    "log",
]


class Operator:
    """A one-input operator; one instance per subtask. Subclass it and
    write ``__init__(self, ctx)`` (``open``: read config, declare state)
    and ``process(self, element, ctx)``."""

    def __init__(self, ctx):
        """Opens the operator; a stateless operator need not write one."""

    def process(self, element, ctx):
        """Handles one element; state handles see its key's state."""
        raise NotImplementedError

    def on_timer(self, timer, ctx):
        """Handles a timer that fired; state handles see its key."""

    def close(self, ctx):
        """Called once at the end of input (keyed state and timers are not
        available; emitting is)."""


class TwoInputOperator(Operator):
    """An operator with two inputs (edges name ``input: 1`` or ``2``): write
    ``process_first`` and ``process_second``; on keyed inputs both see the
    same key's state."""

    def process_first(self, element, ctx):
        """Handles one element of the first input."""
        raise NotImplementedError

    def process_second(self, element, ctx):
        """Handles one element of the second input."""
        raise NotImplementedError


def _bind_host():
    from wit_world.imports import batch_layout, metrics, operator_state, output, state, timers, types
    from wit_world.imports import log as log_api

    return SimpleNamespace(
        batch_layout=batch_layout,
        state=state,
        operator_state=operator_state,
        timers=timers,
        output=output,
        log=log_api,
        metrics=metrics,
        types=types,
    )


def export_operator(cls, host=None):
    """The ``Handler`` class componentize-py exports for operator class
    ``cls``: assign it to ``Handler`` in the app module. ``host`` replaces
    the world's imports (for tests)."""
    RUNTIME.host = host if host is not None else _bind_host()
    two_inputs = issubclass(cls, TwoInputOperator)
    ctx = Context()

    def err(message):
        if host is not None:
            return OpenError(message)
        from componentize_py_types import Err

        return Err(message)

    if host is None:
        from wit_world import exports

        base = exports.Handler
    else:
        base = object

    class Handler(base):
        def open(self, config):
            RUNTIME.forget_declarations()
            # Batches in the column layout: read a column at a time in C.
            RUNTIME.host.batch_layout.use_columns()
            try:
                RUNTIME.operator = cls(OpenContext(config))
            except OpenError as e:
                raise err(str(e)) from None

        def process(self, batch):
            op = RUNTIME.operator
            return RUNTIME.run_batch(batch, op.process_first if two_inputs else op.process, ctx)

        def process_second(self, batch):
            if not two_inputs:
                raise RuntimeError("weir-sdk: this operator has one input; an edge names `input: 2`")
            return RUNTIME.run_batch(batch, RUNTIME.operator.process_second, ctx)

        def on_timer(self, timer):
            RUNTIME.slot = None
            domain = (
                TimeDomain.EVENT_TIME
                if timer.domain == RUNTIME.host.types.TimeDomain.EVENT_TIME
                else TimeDomain.PROCESSING_TIME
            )
            RUNTIME.operator.on_timer(Timer(timer.key, timer.namespace, timer.time, domain), ctx)
            RUNTIME.flush_output()

        def close(self):
            RUNTIME.slot = None
            RUNTIME.operator.close(ctx)
            RUNTIME.flush_output()

    Handler.__name__ = "Handler"
    Handler.__qualname__ = "Handler"
    return Handler
