"""The guest side of the batch protocol: the operator instance, the
prefetched value state of the current batch, and the output buffer.

A component runs one call at a time, and componentize-py makes a new
``Handler`` object for each call, so all of this lives in one module-level
:class:`Runtime`. ``host`` is the module of the world's imports
(``wit_world.imports``), set by :func:`weir_sdk.export_operator`; tests put
a fake there.
"""

from . import wire

#: Output is handed to the host when the buffer grows past this.
OUTPUT_FLUSH_BYTES = 256 * 1024


class Runtime:
    """What one instance of the operator holds between and during calls."""

    def __init__(self):
        self.host = None
        self.operator = None
        #: Ids of the prefetched states, ascending: the order of the
        #: prefetched buffer.
        self.prefetched_ids = []
        #: ``slot * len(prefetched_ids) + index`` -> encoded value or None.
        self.cells = []
        self.dirty = set()
        #: The slot of the element being processed (None: no current key
        #: of a batch, so state goes through the host).
        self.slot = None
        #: The slot the host treats as the current key.
        self.host_slot = None
        self.out = bytearray()

    # --- prefetched value state -------------------------------------------

    def note_prefetched(self, state_id):
        if state_id not in self.prefetched_ids:
            self.prefetched_ids.append(state_id)
            self.prefetched_ids.sort()

    def cell_index(self, state_id):
        """The index of the current key's cell of ``state_id``, or None
        when it is not prefetched here."""
        if self.slot is None or state_id not in self.prefetched_ids:
            return None
        i = self.slot * len(self.prefetched_ids) + self.prefetched_ids.index(state_id)
        return i if i < len(self.cells) else None

    def select_current_key(self):
        """Tells the host which key the next state or timer call is for."""
        if self.slot is not None and self.host_slot != self.slot:
            self.host.state.select_key(self.slot)
            self.host_slot = self.slot

    # --- output ------------------------------------------------------------

    def emit(self, key, value, timestamp):
        wire.write_element(self.out, key, value, timestamp)
        if len(self.out) >= OUTPUT_FLUSH_BYTES:
            self.flush_output()

    def flush_output(self):
        if self.out:
            self.host.output.emit_batch(bytes(self.out))
            self.out.clear()

    # --- a batch -----------------------------------------------------------

    def begin_batch(self, prefetched):
        self.cells = wire.read_slot_values(prefetched) if self.prefetched_ids else []
        self.dirty.clear()
        self.host_slot = None

    def end_batch(self):
        """Flushes the output; the changed prefetched values, encoded."""
        self.flush_output()
        self.slot = None
        per_slot = max(len(self.prefetched_ids), 1)
        updates = bytearray()
        for i in sorted(self.dirty):
            wire.write_update(updates, i // per_slot, self.prefetched_ids[i % per_slot], self.cells[i])
        return bytes(updates)

    def run_batch(self, batch, process, context):
        """Runs ``process(element, ctx)`` over a batch's elements, each
        with its key current."""
        from .context import Element

        self.begin_batch(batch.prefetched)
        slots = batch.key_slots
        for i, (key, value, timestamp) in enumerate(wire.read_elements(batch.elements)):
            self.slot = slots[i] if i < len(slots) else None
            process(Element(key, value, timestamp), context)
        return self.end_batch()


#: The one runtime of this component instance.
RUNTIME = Runtime()
