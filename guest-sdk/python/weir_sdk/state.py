"""Typed handles over the host's keyed state, encoded with a codec from
:mod:`weir_sdk.codec` (the bytes the Rust SDK writes), and the two kinds
Flink adds on top of a value: reducing and aggregating state."""

from .codec import CodecError
from .runtime import ABSENT, RUNTIME, UNREAD

_NO_NAMESPACE = b""


#: Types whose values cannot change once stored.
_IMMUTABLE = frozenset((int, float, str, bytes, bool, type(None)))


def _immutable(value):
    """Whether ``value`` cannot change after it is stored, so it may be
    kept decoded until the batch ends (a list could be changed later, or
    be another key's value too: it is encoded when set)."""
    if type(value) in _IMMUTABLE:
        return True
    return type(value) is tuple and all(_immutable(v) for v in value)


class StateDecodeError(RuntimeError):
    """A stored value that does not decode as its state's type."""


def _decode(name, codec, data):
    try:
        return codec.decode(data)
    except CodecError as e:
        raise StateDecodeError(
            f"state `{name}` holds bytes that do not decode as its type: {e}"
        ) from None


class ValueState:
    """One value per key (and namespace). Prefetched by default: the host
    hands the values of a batch's keys with the batch, so reading and
    writing the current key's value costs no host call."""

    def __init__(self, name, state_id, codec, prefetched):
        self.name = name
        self.id = state_id
        self.codec = codec
        self.prefetched = prefetched
        #: This state's place among a key's prefetched cells (set by the
        #: runtime when the state is declared prefetched).
        self.index = 0

    def get(self):
        """The current key's value, or None."""
        base = RUNTIME.base
        if base is None or not self.prefetched:
            return self.get_in(_NO_NAMESPACE)
        value = self._read_cell(base + self.index)
        return None if value is ABSENT else value

    def set(self, value):
        """Sets the current key's value."""
        base = RUNTIME.base
        if base is None or not self.prefetched:
            RUNTIME.select_current_key()
            RUNTIME.host.state.value_set(self.id, _NO_NAMESPACE, self.codec.encode(value))
        else:
            self._write_cell(base + self.index, value)

    def clear(self):
        """Removes the current key's value."""
        base = RUNTIME.base
        if base is None or not self.prefetched:
            self.clear_in(_NO_NAMESPACE)
        else:
            self._write_cell(base + self.index, ABSENT)

    def update(self, f):
        """Stores and returns ``f(current value or None)``."""
        rt = RUNTIME
        base = rt.base
        if base is None or not self.prefetched:
            new = f(self.get_in(_NO_NAMESPACE))
            self.set(new)
            return new
        # The hot path, with _read_cell and _write_cell inline for the
        # common case of an immutable value (one lookup, no call).
        i = base + self.index
        values = rt.values
        value = values[i]
        if value is UNREAD:
            # _read_cell, inline: the first touch of a key in a batch.
            data = rt.cells[i]
            if data is None:
                value = values[i] = ABSENT
            else:
                value = _decode(self.name, self.codec, data)
                if type(value) in _IMMUTABLE:
                    values[i] = value
        new = f(None if value is ABSENT else value)
        if type(new) in _IMMUTABLE:
            values[i] = new
            rt.dirty.add(i)
        else:
            self._write_cell(i, new)
        return new

    def _read_cell(self, i):
        """The value of prefetched cell ``i`` (``ABSENT`` if none),
        decoded once per batch when it cannot change."""
        rt = RUNTIME
        value = rt.values[i]
        if value is UNREAD:
            data = rt.cells[i]
            value = ABSENT if data is None else _decode(self.name, self.codec, data)
            if _immutable(value):
                rt.values[i] = value
        return value

    def _write_cell(self, i, value):
        """Stores ``value`` (or ``ABSENT``) in prefetched cell ``i``: kept
        as it is if it cannot change (encoded when the batch ends), else
        encoded now."""
        rt = RUNTIME
        if value is ABSENT or _immutable(value):
            rt.values[i] = value
        else:
            rt.cells[i] = self.codec.encode(value)
            rt.values[i] = UNREAD
        rt.dirty.add(i)

    def get_in(self, namespace):
        """The current key's value in ``namespace`` (bytes)."""
        RUNTIME.select_current_key()
        data = RUNTIME.host.state.value_get(self.id, namespace)
        return None if data is None else _decode(self.name, self.codec, data)

    def set_in(self, namespace, value):
        """Sets the current key's value in ``namespace``."""
        RUNTIME.select_current_key()
        RUNTIME.host.state.value_set(self.id, namespace, self.codec.encode(value))

    def clear_in(self, namespace):
        """Removes the current key's value in ``namespace``."""
        RUNTIME.select_current_key()
        RUNTIME.host.state.clear(self.id, namespace)


class ListState:
    """A list of values per key."""

    def __init__(self, name, state_id, codec):
        self.name = name
        self.id = state_id
        self.codec = codec

    def get(self):
        """The current key's values (an empty list if none)."""
        RUNTIME.select_current_key()
        items = RUNTIME.host.state.list_get(self.id, _NO_NAMESPACE)
        return [_decode(self.name, self.codec, b) for b in items]

    def add(self, value):
        """Appends a value."""
        RUNTIME.select_current_key()
        RUNTIME.host.state.list_add(self.id, _NO_NAMESPACE, self.codec.encode(value))

    def set(self, values):
        """Replaces the values."""
        RUNTIME.select_current_key()
        RUNTIME.host.state.list_set(self.id, _NO_NAMESPACE, [self.codec.encode(v) for v in values])

    def clear(self):
        """Removes every value."""
        RUNTIME.select_current_key()
        RUNTIME.host.state.clear(self.id, _NO_NAMESPACE)


class MapState:
    """A map per key, ordered by the encoded map key."""

    def __init__(self, name, state_id, key_codec, value_codec):
        self.name = name
        self.id = state_id
        self.key_codec = key_codec
        self.value_codec = value_codec

    def get(self, key):
        """The value of ``key``, or None."""
        RUNTIME.select_current_key()
        data = RUNTIME.host.state.map_get(self.id, _NO_NAMESPACE, self.key_codec.encode(key))
        return None if data is None else _decode(self.name, self.value_codec, data)

    def put(self, key, value):
        """Sets the value of ``key``."""
        RUNTIME.select_current_key()
        RUNTIME.host.state.map_put(
            self.id, _NO_NAMESPACE, self.key_codec.encode(key), self.value_codec.encode(value)
        )

    def remove(self, key):
        """Removes ``key``."""
        RUNTIME.select_current_key()
        RUNTIME.host.state.map_remove(self.id, _NO_NAMESPACE, self.key_codec.encode(key))

    def entries(self):
        """Every ``(key, value)``, ordered by the encoded key."""
        RUNTIME.select_current_key()
        return [
            (_decode(self.name, self.key_codec, k), _decode(self.name, self.value_codec, v))
            for k, v in RUNTIME.host.state.map_entries(self.id, _NO_NAMESPACE)
        ]

    def clear(self):
        """Removes every entry."""
        RUNTIME.select_current_key()
        RUNTIME.host.state.clear(self.id, _NO_NAMESPACE)


class ReducingState:
    """A value per key that every :meth:`add` folds a new value into with
    ``reduce(current, new)`` (Flink's ``ReducingState``). Stored as a
    value state, so it is prefetched and language-neutral like one."""

    def __init__(self, value, reduce):
        self.value = value
        self.reduce = reduce

    def add(self, item):
        """Folds ``item`` in; returns the new value."""
        current = self.value.get()
        new = item if current is None else self.reduce(current, item)
        self.value.set(new)
        return new

    def get(self):
        """The folded value, or None before the first :meth:`add`."""
        return self.value.get()

    def clear(self):
        """Forgets the folded value."""
        self.value.clear()


class Aggregate:
    """What an :class:`AggregatingState` does (Flink's
    ``AggregateFunction``): subclass it, or pass the three functions."""

    def __init__(self, create_accumulator=None, add=None, get_result=None):
        if create_accumulator is not None:
            self.create_accumulator = create_accumulator
        if add is not None:
            self.add = add
        if get_result is not None:
            self.get_result = get_result

    def create_accumulator(self):
        """A new, empty accumulator."""
        raise NotImplementedError

    def add(self, item, accumulator):
        """The accumulator with ``item`` added."""
        raise NotImplementedError

    def get_result(self, accumulator):
        """The result of an accumulator."""
        return accumulator


class AggregatingState:
    """A value per key kept as an accumulator (encoded with the state's
    codec): :meth:`add` adds an item, :meth:`get` gives the result (Flink's
    ``AggregatingState``)."""

    def __init__(self, value, aggregate):
        self.value = value
        self.aggregate = aggregate

    def add(self, item):
        """Adds ``item`` to the current key's accumulator."""
        acc = self.value.get()
        if acc is None:
            acc = self.aggregate.create_accumulator()
        self.value.set(self.aggregate.add(item, acc))

    def get(self):
        """The current key's result, or None before the first :meth:`add`."""
        acc = self.value.get()
        return None if acc is None else self.aggregate.get_result(acc)

    def clear(self):
        """Forgets the current key's accumulator."""
        self.value.clear()


class OperatorListState:
    """Operator (non-keyed) list state of this subtask, by name; dealt
    round-robin over the subtasks on a rescale."""

    def __init__(self, name, codec):
        self.name = name
        self.codec = codec

    def get(self):
        """The items (an empty list if never written)."""
        return [_decode(self.name, self.codec, b) for b in RUNTIME.host.operator_state.get(self.name)]

    def update(self, items):
        """Replaces the items."""
        RUNTIME.host.operator_state.update(self.name, [self.codec.encode(i) for i in items])

    def add(self, item):
        """Appends one item."""
        RUNTIME.host.operator_state.add(self.name, self.codec.encode(item))
