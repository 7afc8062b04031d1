"""The guest side of the batch protocol: the operator instance, the
prefetched value state of the current batch, and the output not sent yet.

A component runs one call at a time, and componentize-py makes a new
``Handler`` object for each call, so all of this lives in one module-level
:class:`Runtime`. ``host`` is the module of the world's imports
(``wit_world.imports``), set by :func:`weir_sdk.export_operator`; tests put
a fake there.
"""

import struct
from itertools import repeat

from . import bulk, wire
from .element import Element

#: A changed prefetched value's head: slot, state id, 1, length.
_SET_HEAD = struct.Struct("<IIBI")
#: A cleared prefetched value: slot, state id, 0.
_CLEAR_HEAD = struct.Struct("<IIB")

#: Output is handed to the host when this many elements are pending, or
#: when the values of ``LARGE_VALUE_BYTES`` or more among them reach
#: ``OUTPUT_FLUSH_BYTES``, and at the end of every call: the pending
#: output stays under about 1024 small elements and 256 KiB of large
#: values, and only large values pay for being counted.
OUTPUT_FLUSH_ELEMENTS = 1024
OUTPUT_FLUSH_BYTES = 256 * 1024
LARGE_VALUE_BYTES = 256

#: A prefetched value not decoded yet in this batch.
UNREAD = object()
#: A prefetched value that is absent (never set, or cleared).
ABSENT = object()


class Runtime:
    """What one instance of the operator holds between and during calls."""

    def __init__(self):
        self.host = None
        self.operator = None
        #: Ids of the prefetched states, ascending: the order of the
        #: prefetched buffer; their index there, and their codecs.
        self.prefetched_ids = []
        self.codecs = {}
        self.handles = []
        #: ``slot * len(prefetched_ids) + index`` -> the encoded value of
        #: the batch (None: absent).
        self.cells = []
        #: The same cells decoded, once read or written in this batch
        #: (``UNREAD`` until then or when the cell holds the encoding of
        #: a mutable value just set, ``ABSENT`` for no value): a key's
        #: immutable value is decoded once and encoded once per batch.
        self.values = []
        self.dirty = set()
        #: The slot of the element being processed (None: no current key
        #: of a batch, so state goes through the host), and where its
        #: cells begin (None: it has none; checked against ``cells`` once
        #: per batch).
        self.slot = None
        self.base = None
        #: The slot the host treats as the current key.
        self.host_slot = None
        #: Output not handed to the host yet: ``(key, value, timestamp)``
        #: (always this list object), and the bytes of its large values.
        self.pending = []
        self.pending_bytes = 0
        self.emit = self._emitter()

    # --- prefetched value state -------------------------------------------

    def forget_declarations(self):
        """Starts an ``open`` afresh: no prefetched states declared."""
        self.prefetched_ids = []
        self.codecs = {}
        self.handles = []

    def note_prefetched(self, handle):
        """Registers a prefetched value state handle (a ``ValueState``):
        its place among a key's cells follows the ascending state ids."""
        if handle.id not in self.prefetched_ids:
            self.prefetched_ids.append(handle.id)
            self.prefetched_ids.sort()
        self.codecs[handle.id] = handle.codec
        self.handles.append(handle)
        for h in self.handles:
            h.index = self.prefetched_ids.index(h.id)

    def select_current_key(self):
        """Tells the host which key the next state or timer call is for."""
        if self.slot is not None and self.host_slot != self.slot:
            self.host.state.select_key(self.slot)
            self.host_slot = self.slot

    def byte_limit(self):
        """With one prefetched state whose codec writes small unsigned
        integers as one byte that is their value: the first value that
        takes more (0x80 for a varint, 0x100 for a u8). Else None."""
        if len(self.prefetched_ids) != 1:
            return None
        return self.codecs[self.prefetched_ids[0]].byte_limit

    # --- output ------------------------------------------------------------

    def _emitter(self):
        """``emit(key, value, timestamp=None)``, which buffers one output
        element (``Context.emit`` is this function; a closure, as the
        cheapest call CPython has for the hottest line of an operator). A
        ``bytearray`` or ``memoryview`` is copied, so an operator may
        reuse its buffer after the call."""
        pending = self.pending
        append = pending.append

        def emit(key, value, timestamp=None):
            if value.__class__ is not bytes or (key.__class__ is not bytes and key is not None):
                key, value = _owned_bytes(key, value)
            append((key, value, timestamp))
            if len(pending) >= OUTPUT_FLUSH_ELEMENTS:
                self.flush_output()
            elif len(value) >= LARGE_VALUE_BYTES:
                self.pending_bytes += len(value)
                if self.pending_bytes >= OUTPUT_FLUSH_BYTES:
                    self.flush_output()

        return emit

    def flush_output(self):
        """Hands the pending output to the host in one call: encoded in
        bulk when it is all of one shape, else element by element (which
        also says what is wrong with a malformed one)."""
        if not self.pending:
            return
        pending = self.pending[:]
        self.pending.clear()
        self.pending_bytes = 0
        # Bulk encoding pays for itself from a few elements on (the
        # per-record path flushes one at a time).
        data = bulk.encode_elements(*zip(*pending)) if len(pending) > 8 else None
        if data is None:
            out = bytearray()
            for key, value, timestamp in pending:
                try:
                    wire.write_element(out, key, value, timestamp)
                except (TypeError, struct.error) as e:
                    raise _emit_error(key, value, timestamp, e) from None
            data = bytes(out)
        self.host.output.emit_batch(data)

    # --- a batch -----------------------------------------------------------

    def begin_batch(self, batch, slots):
        """Takes a batch's prefetched values; checks that every slot of
        ``slots`` (its elements') has its cells, so the loop indexes them
        unchecked."""
        per_slot = len(self.prefetched_ids)
        small = self.byte_limit()
        values = small and bulk.byte_values(batch.prefetched, small)
        if values:
            # Every cell decoded in C; ``cells`` is read only after a
            # mutable value is set, which writes its cell first.
            self.values = values
            self.cells = [None] * len(values)
        else:
            self.cells = wire.read_slot_values(batch.prefetched) if per_slot else []
            self.values = [UNREAD] * len(self.cells)
        self.dirty.clear()
        self.host_slot = None
        if per_slot and slots and (max(slots) + 1) * per_slot > len(self.cells):
            raise wire.WireError(
                f"slot {max(slots)} has no prefetched values "
                f"({len(self.cells)} for {per_slot} states)"
            )

    def end_batch(self):
        """Flushes the output; the changed prefetched values, encoded."""
        self.flush_output()
        self.slot = None
        self.base = None
        if not self.dirty:
            return b""
        ids = self.prefetched_ids
        small = self.byte_limit()
        if small:
            updates = bulk.byte_updates(list(self.dirty), ids[0], self.values, small)
            if updates is not None:
                return updates
        # Each prefetched state's id and encoder, in cell order.
        states = [(sid, self.codecs[sid].encode) for sid in ids]
        per_slot = len(states)
        values = self.values
        cells = self.cells
        updates = bytearray()
        set_head = _SET_HEAD.pack
        for i in sorted(self.dirty):
            if per_slot == 1:
                # One state (the common case): a key's cell is its slot.
                slot, (state_id, encode) = i, states[0]
            else:
                slot, index = divmod(i, per_slot)
                state_id, encode = states[index]
            value = values[i]
            if value is UNREAD:
                data = cells[i]  # encoded when it was set
            elif value is ABSENT:
                updates += _CLEAR_HEAD.pack(slot, state_id, 0)
                continue
            else:
                data = encode(value)
            updates += set_head(slot, state_id, 1, len(data))
            updates += data
        return bytes(updates)

    def run_batch(self, batch, process, context):
        """Runs ``process(element, ctx)`` over a batch's elements (in the
        column layout, which ``open`` asked for), each with its key
        current."""
        slots, keys, values, timestamps = wire.read_columns(batch.elements)
        self.begin_batch(batch, slots)
        per_slot = len(self.prefetched_ids)
        # Each element's slot and where its cells begin (None on a
        # non-keyed input, or without prefetched states).
        if not slots:
            slots = bases = repeat(None)
        elif per_slot == 1:
            bases = slots
        elif per_slot:
            bases = [slot * per_slot for slot in slots]
        else:
            bases = repeat(None)
        new = object.__new__
        # The hot path: the columns were read in C, so each element costs
        # the loop step, its Element and the call.
        for self.slot, self.base, key, value, timestamp in zip(
            slots, bases, keys, values, timestamps
        ):
            # Element(key, value, timestamp) without a Python-level
            # __init__ call (a third cheaper, per element).
            e = new(Element)
            e.key = key
            e.value = value
            e.timestamp = timestamp
            process(e, context)
        self.base = None
        return self.end_batch()


def _emit_error(key, value, timestamp, cause):
    """The error for an element that cannot be emitted."""
    return TypeError(
        f"weir-sdk: cannot emit key={key!r:.60} value={value!r:.60} "
        f"timestamp={timestamp!r}: the key must be bytes or None, the "
        f"value bytes, the timestamp an int or None ({cause})"
    )


def _owned_bytes(key, value):
    """The key (or None) and the value of an element to emit, as
    ``bytes`` of their own."""
    owned = []
    for which, data in (("key", key), ("value", value)):
        if data is None and which == "key" or data.__class__ is bytes:
            owned.append(data)
        elif isinstance(data, (bytearray, memoryview)):
            owned.append(bytes(data))
        else:
            raise _emit_error(key, value, None, f"the {which} is a {type(data).__name__}")
    return owned


#: The one runtime of this component instance.
RUNTIME = Runtime()
