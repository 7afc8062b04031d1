"""What an operator's methods are handed: :class:`OpenContext` in
``open`` (config, state and metric declarations) and :class:`Context`
elsewhere (emit, timers, time, log)."""

from enum import Enum

from . import state as st
from .element import Element  # noqa: F401 - part of this module's API
from .runtime import RUNTIME


class TimeDomain(Enum):
    """The clock a timer follows."""

    EVENT_TIME = 0
    PROCESSING_TIME = 1


class Level(Enum):
    """Severity of a log line."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


class Timer:
    """A timer that fired: its ``key``, ``namespace``, ``time`` and
    ``domain``."""

    __slots__ = ("key", "namespace", "time", "domain")

    def __init__(self, key, namespace, time, domain):
        self.key = key
        self.namespace = namespace
        self.time = time
        self.domain = domain


class Counter:
    """A counter metric."""

    def __init__(self, metric_id):
        self.id = metric_id

    def add(self, delta=1):
        """Adds ``delta``."""
        RUNTIME.host.metrics.counter_add(self.id, delta)


class Gauge:
    """A gauge metric."""

    def __init__(self, metric_id):
        self.id = metric_id

    def set(self, value):
        """Sets the gauge."""
        RUNTIME.host.metrics.gauge_set(self.id, float(value))


class OpenError(Exception):
    """Raised in ``open``: the job fails with its message."""


class OpenContext:
    """Handed to an operator's ``open``: its config and the place to
    declare state and metrics. ``ttl_ms`` on a state makes its entries
    expire that long (processing time) after they were last written, as
    Flink's ``StateTtlConfig``."""

    def __init__(self, config):
        self.config = list(config)

    def get(self, name, default=None):
        """A config value by name."""
        for k, v in self.config:
            if k == name:
                return v
        return default

    def require(self, name):
        """A config value that must be present."""
        v = self.get(name)
        if v is None:
            raise OpenError(f"missing config key `{name}`")
        return v

    def parse(self, name, kind=int):
        """A config value converted with ``kind`` (``int``, ``float``...),
        None if absent."""
        raw = self.get(name)
        if raw is None:
            return None
        try:
            return kind(raw)
        except ValueError as e:
            raise OpenError(f"config key `{name}`: cannot parse {raw!r}: {e}") from None

    def _declare(self, name, kind, prefetch, ttl_ms):
        kinds = RUNTIME.host.state.StateKind
        k = {"value": kinds.VALUE, "list": kinds.LIST, "map": kinds.MAP}[kind]
        if ttl_ms is None:
            return RUNTIME.host.state.declare(name, k, prefetch)
        return RUNTIME.host.state.declare_with_ttl(name, k, prefetch, max(int(ttl_ms), 1))

    def value_state(self, name, codec, prefetch=True, ttl_ms=None):
        """A keyed value state. Prefetched unless ``prefetch=False`` (for
        state used mostly in namespaces, such as windows)."""
        state_id = self._declare(name, "value", prefetch, ttl_ms)
        handle = st.ValueState(name, state_id, codec, prefetch)
        if prefetch:
            RUNTIME.note_prefetched(handle)
        return handle

    def list_state(self, name, codec, ttl_ms=None):
        """A keyed list state."""
        return st.ListState(name, self._declare(name, "list", False, ttl_ms), codec)

    def map_state(self, name, key_codec, value_codec, ttl_ms=None):
        """A keyed map state."""
        return st.MapState(name, self._declare(name, "map", False, ttl_ms), key_codec, value_codec)

    def reducing_state(self, name, codec, reduce, ttl_ms=None):
        """A keyed reducing state: ``reduce(a, b)`` folds each added value
        in. Stored as a value state named ``name``."""
        return st.ReducingState(self.value_state(name, codec, ttl_ms=ttl_ms), reduce)

    def aggregating_state(self, name, accumulator_codec, aggregate, ttl_ms=None):
        """A keyed aggregating state over :class:`weir_sdk.Aggregate`
        ``aggregate``; its accumulator is stored as a value state named
        ``name``."""
        return st.AggregatingState(self.value_state(name, accumulator_codec, ttl_ms=ttl_ms), aggregate)

    def operator_list_state(self, name, codec):
        """The operator (non-keyed) list state ``name`` of this subtask."""
        return st.OperatorListState(name, codec)

    def counter(self, name):
        """Declares a counter metric."""
        return Counter(RUNTIME.host.metrics.counter(name))

    def gauge(self, name):
        """Declares a gauge metric."""
        return Gauge(RUNTIME.host.metrics.gauge(name))


class Context:
    """Handed to ``process``, ``on_timer`` and ``close``."""

    def __init__(self):
        # The hot path: ``ctx.emit`` is the runtime's own function, one call.
        self.emit = RUNTIME.emit

    def emit(self, key, value, timestamp=None):  # noqa: F811 - replaced per instance
        """Emits an element (buffered, and handed to the host a few
        hundred at a time)."""
        RUNTIME.emit(key, value, timestamp)

    def emit_side(self, tag, key, value, timestamp=None):
        """Emits an element to side output ``tag`` (main output buffered so
        far goes first)."""
        from . import wire

        RUNTIME.flush_output()
        one = bytearray()
        wire.write_element(one, key, value, timestamp)
        RUNTIME.host.output.emit_side(tag, bytes(one))

    def watermark(self):
        """The current event-time watermark."""
        return RUNTIME.host.timers.current_watermark()

    def processing_time(self):
        """The wall clock in ms since the Unix epoch."""
        return RUNTIME.host.timers.current_processing_time()

    def register_event_timer(self, time):
        """Registers an event-time timer of the current key."""
        self.register_timer_in(TimeDomain.EVENT_TIME, b"", time)

    def register_processing_timer(self, time):
        """Registers a processing-time timer of the current key."""
        self.register_timer_in(TimeDomain.PROCESSING_TIME, b"", time)

    def register_timer_in(self, domain, namespace, time):
        """Registers a timer of the current key in ``namespace``."""
        RUNTIME.select_current_key()
        RUNTIME.host.timers.register(_domain(domain), namespace, time)

    def delete_timer_in(self, domain, namespace, time):
        """Deletes a timer of the current key, if registered."""
        RUNTIME.select_current_key()
        RUNTIME.host.timers.delete(_domain(domain), namespace, time)

    def log(self, level, message):
        """Writes a line to the job's log, tagged with the operator."""
        log(level, message)


def _domain(domain):
    d = RUNTIME.host.types.TimeDomain
    return d.EVENT_TIME if domain == TimeDomain.EVENT_TIME else d.PROCESSING_TIME


def log(level, message):
    """Writes a line to the job's log, tagged with the operator."""
    levels = RUNTIME.host.log.Level
    RUNTIME.host.log.log(getattr(levels, level.name), str(message))
