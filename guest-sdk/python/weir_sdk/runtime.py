"""The guest side of the batch protocol: the operator instance, the
prefetched value state of the current batch, and the output buffer.

A component runs one call at a time, and componentize-py makes a new
``Handler`` object for each call, so all of this lives in one module-level
:class:`Runtime`. ``host`` is the module of the world's imports
(``wit_world.imports``), set by :func:`weir_sdk.export_operator`; tests put
a fake there.
"""

import struct

from . import wire

#: Element heads: flags, then the timestamp and/or the key's length.
_KEY_TS_HEAD = struct.Struct("<BqI")
_KEY_HEAD = struct.Struct("<BI")
_TS_HEAD = struct.Struct("<Bq")
_LEN = struct.Struct("<I")
_I64 = struct.Struct("<q")
#: A changed prefetched value's head: slot, state id, 1, length.
_SET_HEAD = struct.Struct("<IIBI")
#: A cleared prefetched value: slot, state id, 0.
_CLEAR_HEAD = struct.Struct("<IIB")

#: Output is handed to the host when the buffer grows past this.
OUTPUT_FLUSH_BYTES = 256 * 1024

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
        self.out = bytearray()

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

    # --- output ------------------------------------------------------------

    def emit(self, key, value, timestamp=None):
        """Buffers one output element (``Context.emit`` is this method)."""
        out = self.out
        # The element's head in one pack (wire.write_element, inline).
        if key is not None:
            if timestamp is not None:
                out += _KEY_TS_HEAD.pack(3, timestamp, len(key))
            else:
                out += _KEY_HEAD.pack(1, len(key))
            out += key
        elif timestamp is not None:
            out += _TS_HEAD.pack(2, timestamp)
        else:
            out.append(0)
        out += _LEN.pack(len(value))
        out += value
        if len(out) >= OUTPUT_FLUSH_BYTES:
            self.flush_output()

    def flush_output(self):
        if self.out:
            self.host.output.emit_batch(bytes(self.out))
            self.out.clear()

    # --- a batch -----------------------------------------------------------

    def begin_batch(self, batch):
        """Takes a batch's prefetched values; checks that every slot has
        its cells, so the loop indexes them unchecked."""
        per_slot = len(self.prefetched_ids)
        self.cells = wire.read_slot_values(batch.prefetched) if per_slot else []
        self.values = [UNREAD] * len(self.cells)
        self.dirty.clear()
        self.host_slot = None
        slots = batch.key_slots
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
        ids = self.prefetched_ids
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
        """Runs ``process(element, ctx)`` over a batch's elements, each
        with its key current."""
        from .context import Element

        self.begin_batch(batch)
        slots = batch.key_slots
        n_slots = len(slots)
        per_slot = len(self.prefetched_ids)
        data = batch.elements
        end = len(data)
        pos = i = 0
        unpack_u32 = _LEN.unpack_from
        unpack_i64 = _I64.unpack_from
        new = object.__new__
        # wire.read_elements, inline: this loop is the hot path.
        try:
            while pos < end:
                flags = data[pos]
                pos += 1
                timestamp = key = None
                if flags & 2:
                    timestamp = unpack_i64(data, pos)[0]
                    pos += 8
                if flags & 1:
                    n = unpack_u32(data, pos)[0]
                    key = data[pos + 4:pos + 4 + n]
                    pos += 4 + n
                n = unpack_u32(data, pos)[0]
                value = data[pos + 4:pos + 4 + n]
                pos += 4 + n
                if pos > end:
                    raise wire.WireError("an element runs past the end of its batch")
                if i < n_slots:
                    slot = slots[i]
                    self.slot = slot
                    self.base = slot * per_slot if per_slot else None
                else:
                    self.slot = self.base = None
                i += 1
                # Element(key, value, timestamp) without a Python-level
                # __init__ call (a third cheaper, per element).
                e = new(Element)
                e.key = key
                e.value = value
                e.timestamp = timestamp
                process(e, context)
        except struct.error as e:
            raise wire.WireError(f"a malformed batch at byte {pos}: {e}") from None
        self.base = None
        return self.end_batch()


#: The one runtime of this component instance.
RUNTIME = Runtime()
