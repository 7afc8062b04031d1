"""The byte layouts of the batch protocol (``wit/operator.wit``): the batch
encoding of elements, the prefetched values of a batch's keys, and the
changed values ``process`` returns. Pure Python, testable off the host."""

import struct

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_UPDATE = struct.Struct("<IIB")

KEY = 1
TIMESTAMP = 2


class WireError(ValueError):
    """Bytes from the host that do not follow the protocol."""


def read_elements(data):
    """Yields ``(key, value, timestamp)`` of each element in ``data``, in
    the batch encoding; ``key`` and ``timestamp`` may be ``None``."""
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
