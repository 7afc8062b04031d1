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

_KEYED_HEAD = struct.Struct("<BqI")
_LEN = struct.Struct("<I")
_I64 = struct.Struct("<q")

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
        self.prefetched_index = {}
        self.codecs = {}
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
        #: cells begin (None: it has none).
        self.slot = None
        self.base = None
        #: The slot the host treats as the current key.
        self.host_slot = None
        self.out = bytearray()

    # --- prefetched value state -------------------------------------------

    def note_prefetched(self, state_id, codec):
        if state_id not in self.prefetched_ids:
            self.prefetched_ids.append(state_id)
            self.prefetched_ids.sort()
            self.prefetched_index = {sid: i for i, sid in enumerate(self.prefetched_ids)}
        self.codecs[state_id] = codec

    def cell_index(self, state_id):
        """The index of the current key's cell of ``state_id``, or None
        when it is not prefetched here."""
        base = self.base
        if base is None:
            return None
        index = self.prefetched_index.get(state_id)
        if index is None:
            return None
        i = base + index
        return i if i < len(self.cells) else None

    def select_current_key(self):
        """Tells the host which key the next state or timer call is for."""
        if self.slot is not None and self.host_slot != self.slot:
            self.host.state.select_key(self.slot)
            self.host_slot = self.slot

    # --- output ------------------------------------------------------------

    def emit(self, key, value, timestamp):
        out = self.out
        if key is not None and timestamp is not None:
            # The common case in one pack: flags, timestamp, key length.
            out += _KEYED_HEAD.pack(3, timestamp, len(key))
            out += key
            out += _LEN.pack(len(value))
            out += value
        else:
            wire.write_element(out, key, value, timestamp)
        if len(out) >= OUTPUT_FLUSH_BYTES:
            self.flush_output()

    def flush_output(self):
        if self.out:
            self.host.output.emit_batch(bytes(self.out))
            self.out.clear()

    # --- a batch -----------------------------------------------------------

    def begin_batch(self, prefetched):
        self.cells = wire.read_slot_values(prefetched) if self.prefetched_ids else []
        self.values = [UNREAD] * len(self.cells)
        self.dirty.clear()
        self.host_slot = None

    def end_batch(self):
        """Flushes the output; the changed prefetched values, encoded."""
        self.flush_output()
        self.slot = None
        self.base = None
        per_slot = max(len(self.prefetched_ids), 1)
        updates = bytearray()
        for i in sorted(self.dirty):
            state_id = self.prefetched_ids[i % per_slot]
            value = self.values[i]
            if value is UNREAD:
                data = self.cells[i]  # encoded when it was set
            elif value is ABSENT:
                data = None
            else:
                data = self.codecs[state_id].encode(value)
            wire.write_update(updates, i // per_slot, state_id, data)
        return bytes(updates)

    def run_batch(self, batch, process, context):
        """Runs ``process(element, ctx)`` over a batch's elements, each
        with its key current."""
        from .context import Element

        self.begin_batch(batch.prefetched)
        slots = batch.key_slots
        n_slots = len(slots)
        per_slot = len(self.prefetched_ids)
        data = batch.elements
        end = len(data)
        pos = i = 0
        unpack_u32 = _LEN.unpack_from
        unpack_i64 = _I64.unpack_from
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
                slot = slots[i] if i < n_slots else None
                i += 1
                self.slot = slot
                self.base = slot * per_slot if per_slot and slot is not None else None
                process(Element(key, value, timestamp), context)
        except struct.error as e:
            raise wire.WireError(f"a malformed batch at byte {pos}: {e}") from None
        self.base = None
        return self.end_batch()


#: The one runtime of this component instance.
RUNTIME = Runtime()
