"""The byte layouts of the batch protocol (``wit/operator.wit``): the batch
encoding of elements, the prefetched values of a batch's keys, and the
changed values ``process`` returns. Pure Python, testable off the host."""

import struct
from itertools import chain

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_UPDATE = struct.Struct("<IIB")

KEY = 1
TIMESTAMP = 2


class WireError(ValueError):
    """Bytes from the host that do not follow the protocol."""


def read_elements(data):
    """Yields ``(key, value, timestamp)`` of each element in ``data``, in
    the batch encoding; ``key`` and ``timestamp`` may be ``None``. (Batches
    come in the column layout, see :func:`read_columns`; this reads the
    output a component emits, for tests and fake hosts.)"""
    pos = 0
    end = len(data)
    unpack_u32 = _U32.unpack_from
    unpack_i64 = _I64.unpack_from
    try:
        while pos < end:
            flags = data[pos]
            pos += 1
            timestamp = None
            if flags & TIMESTAMP:
                timestamp = unpack_i64(data, pos)[0]
                pos += 8
            key = None
            if flags & KEY:
                n = unpack_u32(data, pos)[0]
                pos += 4
                key = data[pos:pos + n]
                pos += n
            n = unpack_u32(data, pos)[0]
            pos += 4
            value = data[pos:pos + n]
            pos += n
            if pos > end:
                raise WireError("an element runs past the end of its batch")
            yield key, value, timestamp
    except struct.error as e:
        raise WireError(f"a malformed batch at byte {pos}: {e}") from None


_COLUMNS_HEAD = struct.Struct("<II")
#: A batch of one element (the per-record path), keyed or not, whole:
#: header, timestamp, slot if keyed, key end, value end, flags.
_ONE_KEYED = struct.Struct("<IIqIIIB")
_ONE = struct.Struct("<IIqIIB")
#: Each flags byte mapped to its key bit, and to its timestamp bit.
_KEY_BITS = bytes(b & KEY for b in range(256))
_TIMESTAMP_BITS = bytes((b & TIMESTAMP) >> 1 for b in range(256))
#: The flags bytes that are valid.
_FLAG_VALUES = bytes(range((KEY | TIMESTAMP) + 1))


def read_columns(data):
    """The elements of a batch in the column layout (``batch-layout`` in
    ``wit/operator.wit``) as four sequences: slots (empty on a non-keyed
    input), keys, values and timestamps (None where absent). Each column
    is read by one C call, so a batch costs no Python step per element
    unless its elements mix shapes."""
    try:
        n, keyed = _COLUMNS_HEAD.unpack_from(data, 0)
        if n == 1:
            return _read_one_column(data, keyed)
        pos = 8
        timestamps = struct.unpack_from(f"<{n}q", data, pos)
        pos += 8 * n
        slots = struct.unpack_from(f"<{n}I", data, pos) if keyed else ()
        pos += 4 * n if keyed else 0
        key_ends = struct.unpack_from(f"<{n}I", data, pos)
        value_ends = struct.unpack_from(f"<{n}I", data, pos + 4 * n)
        pos += 8 * n
    except struct.error as e:
        raise WireError(f"a malformed batch (columns): {e}") from None
    flags = data[pos:pos + n]
    pos += n
    key_bytes = key_ends[-1] if n else 0
    if len(flags) != n or pos + key_bytes + (value_ends[-1] if n else 0) != len(data):
        raise WireError("a malformed batch (columns): its lengths do not add up to its size")
    if sorted(key_ends) != list(key_ends) or sorted(value_ends) != list(value_ends):
        raise WireError("a malformed batch (columns): an element ends before the one before it")
    if flags.translate(None, _FLAG_VALUES):
        raise WireError("a malformed batch (columns): a flags byte has bits other than key and timestamp")
    keys_data = data[pos:pos + key_bytes]
    values_data = data[pos + key_bytes:]
    keys = list(map(keys_data.__getitem__, map(slice, chain((0,), key_ends), key_ends)))
    values = list(map(values_data.__getitem__, map(slice, chain((0,), value_ends), value_ends)))
    if flags.translate(_KEY_BITS).count(1) != n:
        keys = [k if f & KEY else None for k, f in zip(keys, flags)]
    with_timestamp = flags.translate(_TIMESTAMP_BITS).count(1)
    if with_timestamp == 0:
        timestamps = [None] * n
    elif with_timestamp != n:
        timestamps = [t if f & TIMESTAMP else None for t, f in zip(timestamps, flags)]
    return slots, keys, values, timestamps


def _read_one_column(data, keyed):
    """``read_columns`` of a one-element batch, in one unpack."""
    if keyed:
        _, _, timestamp, slot, key_end, value_end, flags = _ONE_KEYED.unpack_from(data, 0)
        slots, pos = (slot,), _ONE_KEYED.size
    else:
        _, _, timestamp, key_end, value_end, flags = _ONE.unpack_from(data, 0)
        slots, pos = (), _ONE.size
    if pos + key_end + value_end != len(data):
        raise WireError("a malformed batch (columns): its lengths do not add up to its size")
    if flags & ~(KEY | TIMESTAMP):
        raise WireError("a malformed batch (columns): a flags byte has bits other than key and timestamp")
    key = data[pos:pos + key_end] if flags & KEY else None
    value = data[pos + key_end:]
    return slots, [key], [value], [timestamp if flags & TIMESTAMP else None]


def write_columns(elements, slots=()):
    """The column layout of ``(key, value, timestamp)`` elements, with
    their ``slots`` on a keyed input (what the host writes; for tests)."""
    n = len(elements)
    out = bytearray(_COLUMNS_HEAD.pack(n, 1 if slots else 0))
    out += struct.pack(f"<{n}q", *(t or 0 for _, _, t in elements))
    if slots:
        out += struct.pack(f"<{n}I", *slots)
    key_end = value_end = 0
    key_ends, value_ends = [], []
    for key, value, _ in elements:
        key_end += len(key or b"")
        value_end += len(value)
        key_ends.append(key_end)
        value_ends.append(value_end)
    out += struct.pack(f"<{n}I", *key_ends)
    out += struct.pack(f"<{n}I", *value_ends)
    out += bytes((KEY if k is not None else 0) | (TIMESTAMP if t is not None else 0) for k, _, t in elements)
    for key, _, _ in elements:
        out += key or b""
    for _, value, _ in elements:
        out += value
    return bytes(out)


def write_element(out, key, value, timestamp):
    """Appends one element to ``out`` (a bytearray) in the batch encoding."""
    flags = (KEY if key is not None else 0) | (TIMESTAMP if timestamp is not None else 0)
    out.append(flags)
    if timestamp is not None:
        out += _I64.pack(timestamp)
    if key is not None:
        out += _U32.pack(len(key))
        out += key
    out += _U32.pack(len(value))
    out += value


def read_slot_values(data):
    """The prefetched values of a batch, in order: ``None`` for absent."""
    values = []
    append = values.append
    unpack_u32 = _U32.unpack_from
    # Slices of bytes are bytes; of anything else, made bytes.
    data = data if type(data) is bytes else bytes(data)
    pos = 0
    end = len(data)
    try:
        while pos < end:
            if data[pos] == 0:
                append(None)
                pos += 1
                continue
            n = unpack_u32(data, pos + 1)[0]
            pos += 5 + n
            if pos > end:
                raise WireError("a prefetched value runs past its buffer")
            append(data[pos - n:pos])
    except struct.error as e:
        raise WireError(f"malformed prefetched values at byte {pos}: {e}") from None
    return values


def write_update(out, slot, state_id, value):
    """Appends one changed prefetched value (``None``: cleared) to ``out``."""
    if value is None:
        out += _UPDATE.pack(slot, state_id, 0)
    else:
        out += _UPDATE.pack(slot, state_id, 1)
        out += _U32.pack(len(value))
        out += value
