"""State value codecs: the postcard subset every Weir SDK shares.

The bytes are those of the Rust SDK (postcard 1.x), written down in
``docs/state-codec.md``, so a state written by an operator in one language
reads in another. A codec is an object with ``encode(value) -> bytes`` and
``decode(data) -> value``; ``decode`` refuses bytes that are not exactly
one value.
"""

import struct


class CodecError(ValueError):
    """Bytes that do not decode as the codec's type."""


class Codec:
    """Encodes values of one type; subclasses write ``write`` and ``read``."""

    #: The integers below it (from 0) encode as one byte holding the value,
    #: which lets a batch of them be read and written in bulk; None: no
    #: value encodes so.
    byte_limit = None

    def encode(self, value):
        """The bytes of ``value``."""
        out = bytearray()
        self.write(out, value)
        return bytes(out)

    def decode(self, data):
        """The value of ``data``, which must hold exactly one value."""
        value, end = self.read(memoryview(data), 0)
        if end != len(data):
            raise CodecError(f"{len(data) - end} bytes left over after the value")
        return value

    def write(self, out, value):  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, data, pos):  # pragma: no cover - abstract
        raise NotImplementedError


def _write_varint(out, n):
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _read_varint(data, pos, bits):
    n = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise CodecError("the value ends inside a varint")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if n >> bits:
                raise CodecError(f"a varint wider than {bits} bits")
            return n, pos
        shift += 7
        if shift >= bits:
            raise CodecError(f"a varint longer than a {bits}-bit integer's")


#: The one-byte encodings of 0..127, made once.
_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


class _Unsigned(Codec):
    def __init__(self, bits):
        self.bits = bits
        self.byte_limit = 0x100 if bits == 8 else 0x80

    def encode(self, value):
        # The common small values without the general loop (state hot path).
        if type(value) is int and 0 <= value < 0x80 and self.bits > 8:
            return _ONE_BYTE[value]
        return Codec.encode(self, value)

    def decode(self, data):
        if len(data) == 1 and data[0] < 0x80:
            return data[0]
        return Codec.decode(self, data)

    def write(self, out, value):
        if not isinstance(value, int) or value < 0 or value >> self.bits:
            raise CodecError(f"{value!r} is not a u{self.bits}")
        if self.bits == 8:
            out.append(value)
        else:
            _write_varint(out, value)

    def read(self, data, pos):
        if self.bits == 8:
            if pos >= len(data):
                raise CodecError("the value ends before its byte")
            return data[pos], pos + 1
        return _read_varint(data, pos, self.bits)


class _Signed(Codec):
    def __init__(self, bits):
        self.bits = bits

    def write(self, out, value):
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        if not isinstance(value, int) or not lo <= value <= hi:
            raise CodecError(f"{value!r} is not an i{self.bits}")
        if self.bits == 8:
            out.append(value & 0xFF)
        else:
            _write_varint(out, (value << 1) ^ (value >> (self.bits - 1)))

    def read(self, data, pos):
        if self.bits == 8:
            if pos >= len(data):
                raise CodecError("the value ends before its byte")
            b = data[pos]
            return (b - 256 if b > 127 else b), pos + 1
        n, pos = _read_varint(data, pos, self.bits)
        return (n >> 1) ^ -(n & 1), pos


class _Float(Codec):
    def __init__(self, fmt):
        self.fmt = fmt
        self.size = struct.calcsize(fmt)

    def write(self, out, value):
        out += struct.pack(self.fmt, value)

    def read(self, data, pos):
        if pos + self.size > len(data):
            raise CodecError("the value ends inside a float")
        return struct.unpack_from(self.fmt, data, pos)[0], pos + self.size


class _Bool(Codec):
    def write(self, out, value):
        out.append(1 if value else 0)

    def read(self, data, pos):
        if pos >= len(data) or data[pos] > 1:
            raise CodecError("not a boolean")
        return data[pos] == 1, pos + 1


class _Bytes(Codec):
    def write(self, out, value):
        _write_varint(out, len(value))
        out += value

    def read(self, data, pos):
        n, pos = _read_varint(data, pos, 64)
        if pos + n > len(data):
            raise CodecError("the value ends inside a byte string")
        return bytes(data[pos:pos + n]), pos + n


class _Str(Codec):
    def write(self, out, value):
        raw = value.encode("utf-8")
        _write_varint(out, len(raw))
        out += raw

    def read(self, data, pos):
        raw, pos = BYTES.read(data, pos)
        try:
            return raw.decode("utf-8"), pos
        except UnicodeDecodeError as e:
            raise CodecError(f"text that is not UTF-8: {e}") from None


class Option(Codec):
    """``None`` or a value of ``inner`` (Rust's ``Option<T>``)."""

    def __init__(self, inner):
        self.inner = inner

    def write(self, out, value):
        if value is None:
            out.append(0)
        else:
            out.append(1)
            self.inner.write(out, value)

    def read(self, data, pos):
        if pos >= len(data) or data[pos] > 1:
            raise CodecError("not an option's tag")
        if data[pos] == 0:
            return None, pos + 1
        return self.inner.read(data, pos + 1)


class List(Codec):
    """A list of values of ``inner`` (Rust's ``Vec<T>``)."""

    def __init__(self, inner):
        self.inner = inner

    def write(self, out, value):
        _write_varint(out, len(value))
        for item in value:
            self.inner.write(out, item)

    def read(self, data, pos):
        n, pos = _read_varint(data, pos, 64)
        items = []
        for _ in range(n):
            item, pos = self.inner.read(data, pos)
            items.append(item)
        return items, pos


class Tuple(Codec):
    """A tuple of values, one per codec, in order: also a Rust struct's
    fields in declaration order."""

    def __init__(self, *fields):
        self.fields = fields

    def write(self, out, value):
        if len(value) != len(self.fields):
            raise CodecError(f"{len(value)} fields for a tuple of {len(self.fields)}")
        for codec, item in zip(self.fields, value):
            codec.write(out, item)

    def read(self, data, pos):
        items = []
        for codec in self.fields:
            item, pos = codec.read(data, pos)
            items.append(item)
        return tuple(items), pos


U8 = _Unsigned(8)
U16 = _Unsigned(16)
U32 = _Unsigned(32)
U64 = _Unsigned(64)
I8 = _Signed(8)
I16 = _Signed(16)
I32 = _Signed(32)
I64 = _Signed(64)
F32 = _Float("<f")
F64 = _Float("<d")
BOOL = _Bool()
BYTES = _Bytes()
STR = _Str()
