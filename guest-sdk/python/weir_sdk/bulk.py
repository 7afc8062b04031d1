"""Whole-batch encoding and decoding done by CPython's C code (``map``,
``zip``, ``bytes.join``, strided slices) instead of a Python loop per
element, for the shapes that are the common case:

* output elements that all have the same shape (all keyed or none, all
  with a timestamp or none);
* one prefetched value state whose values are small unsigned integers
  (a count, a flag): each cell one byte that is its own value.

Inside a WebAssembly component each Python-level step costs two to three
times what it does natively, so a batch that takes these paths spends its
time in the operator's own code. Each function returns None when its input
is not of its shape; the caller then takes the general path, which also
reports what is wrong with a malformed value."""

import struct
from itertools import chain, repeat

_KEY_HEAD = struct.Struct("<BI").pack
_KEY_TS_HEAD = struct.Struct("<BqI").pack
_TS_HEAD = struct.Struct("<Bq").pack
_LEN = struct.Struct("<I").pack
#: The heads of a keyed element without a timestamp, and the length
#: prefixes, for lengths below 256: looked up instead of packed.
_KEY_HEADS = [_KEY_HEAD(1, n) for n in range(256)]
_LENS = [_LEN(n) for n in range(256)]
#: A changed one-byte cell: slot, state id, 1 (set), length 1, the byte.
_SET_BYTE = struct.Struct("<IIBIB").pack
#: A one-byte cell's bytes before its value: present, then length 1.
_CELL_HEAD = b"\x01\x01\x00\x00\x00"


def encode_elements(keys, values, timestamps):
    """The batch encoding of elements given as three equal-length tuples,
    or None unless they are all of one shape (and every part the right
    type)."""
    try:
        # Heads and lengths looked up for the common short keys and values.
        return _encode(keys, values, timestamps, _KEY_HEADS.__getitem__, _LENS.__getitem__)
    except IndexError:
        # A key or value of 256 bytes or more: packed instead.
        return _encode(keys, values, timestamps, _packed_key_head, _LEN)


def _packed_key_head(n):
    return _KEY_HEAD(1, n)


def _encode(keys, values, timestamps, key_head, length):
    n = len(keys)
    untimed = timestamps.count(None)
    unkeyed = keys.count(None)
    if unkeyed not in (0, n) or untimed not in (0, n):
        return None
    if unkeyed:
        heads = repeat(b"\x00", n) if untimed else map(_TS_HEAD, repeat(2), timestamps)
    elif untimed:
        heads = map(key_head, map(len, keys))
    else:
        heads = map(_KEY_TS_HEAD, repeat(3), timestamps, map(len, keys))
    lens = map(length, map(len, values))
    parts = zip(heads, lens, values) if unkeyed else zip(heads, keys, lens, values)
    try:
        return b"".join(chain.from_iterable(parts))
    except (TypeError, struct.error):
        # A part of the wrong type: the general path says which.
        return None


def byte_values(data, limit):
    """The values of one prefetched state's cells when every cell is
    present and holds one byte below ``limit`` (which is then the value,
    as in a varint below 0x80 or a raw u8), else None."""
    n, rest = divmod(len(data), 6)
    if rest or not n:
        return None
    for i, byte in enumerate(_CELL_HEAD):
        if data[i::6].count(byte) != n:
            return None
    values = data[5::6]
    if max(values) >= limit:
        return None
    return list(values)


def byte_updates(slots, state_id, values, limit):
    """The updates of one prefetched state's changed ``slots`` (in any
    order: the host applies each on its own) when each new value is an int in ``[0, limit)``, which encodes as
    itself in one byte, else None."""
    new = list(map(values.__getitem__, slots))
    if not new:
        return b""
    try:
        if min(new) < 0 or max(new) >= limit:
            return None
        return b"".join(map(_SET_BYTE, slots, repeat(state_id), repeat(1), repeat(1), new))
    except (TypeError, struct.error):
        return None
