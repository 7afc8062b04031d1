"""The column layout and the bulk encoders against the per-element ones:
every shape they take gives the same bytes, and every shape they do not
take falls back (None) instead of writing something else."""

import os
import random
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from weir_sdk import bulk, codec, wire  # noqa: E402


def rows(elements):
    out = bytearray()
    for key, value, timestamp in elements:
        wire.write_element(out, key, value, timestamp)
    return bytes(out)


def random_elements(rng, keys, timestamps):
    """Elements whose keys and timestamps are all present, all absent or
    mixed, with lengths on both sides of the 256-byte lookup tables."""

    def pick(mode, make):
        return None if mode == "none" or (mode == "mix" and rng.random() < 0.5) else make()

    return [
        (
            pick(keys, lambda: bytes(rng.randrange(256) for _ in range(rng.choice((0, 3, 300))))),
            bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 255, 256, 700)))),
            pick(timestamps, lambda: rng.randrange(-(2**63), 2**63)),
        )
        for _ in range(rng.randrange(1, 30))
    ]


class ColumnsTest(unittest.TestCase):
    def test_columns_read_back_every_shape(self):
        rng = random.Random(7)
        for keys in ("all", "none", "mix"):
            for timestamps in ("all", "none", "mix"):
                for _ in range(20):
                    elements = random_elements(rng, keys, timestamps)
                    slots = list(range(len(elements))) if keys == "all" else []
                    got_slots, got_keys, values, got_timestamps = wire.read_columns(
                        wire.write_columns(elements, slots)
                    )
                    self.assertEqual(list(got_slots), slots)
                    self.assertEqual(list(zip(got_keys, values, got_timestamps)), elements)

    def test_the_layout_is_the_hosts(self):
        # The same bytes as the host's test of its writer (wire/src/columns.rs).
        want = (
            struct.pack("<IIqIII", 1, 1, 0, 7, 1, 2) + b"\x01" + b"kvv"
        )
        self.assertEqual(wire.write_columns([(b"k", b"vv", None)], [7]), want)
        self.assertEqual(wire.read_columns(want), ((7,), [b"k"], [b"vv"], [None]))

    def test_an_empty_batch_and_malformed_ones(self):
        self.assertEqual(wire.read_columns(bytes(8)), ((), [], [], []))
        good = wire.write_columns([(b"k", b"v", None)], [0])
        for bad in (good[:5], good[:-1], good + b"x"):
            with self.assertRaises(wire.WireError):
                wire.read_columns(bad)
        # A flags byte with a bit the layout does not have, in a batch of
        # one and of two.
        one = bytearray(good)
        one[-3] = 0x05
        two = bytearray(wire.write_columns([(b"k", b"v", None), (b"l", b"w", 3)], [0, 1]))
        two[-5] = 0x04
        for bad in (one, two):
            with self.assertRaisesRegex(wire.WireError, "flags"):
                wire.read_columns(bytes(bad))
        # Key ends that go back (the lengths still add up).
        n = 3
        elements = [(b"ab", b"v", None), (b"c", b"w", None), (b"d", b"x", None)]
        good = bytearray(wire.write_columns(elements))
        ends = 8 + 8 * n
        struct.pack_into("<3I", good, ends, 2, 1, 4)
        with self.assertRaisesRegex(wire.WireError, "ends before"):
            wire.read_columns(bytes(good))


class BulkTest(unittest.TestCase):
    def test_bulk_output_is_the_per_element_encoding_or_nothing(self):
        rng = random.Random(11)
        taken = 0
        for keys in ("all", "none", "mix"):
            for timestamps in ("all", "none", "mix"):
                for _ in range(30):
                    elements = random_elements(rng, keys, timestamps)
                    got = bulk.encode_elements(*zip(*elements))
                    if keys == "mix" or timestamps == "mix":
                        if got is not None:
                            self.assertEqual(got, rows(elements))
                        continue
                    self.assertEqual(got, rows(elements))
                    taken += 1
        self.assertGreater(taken, 100)

    def test_bulk_output_leaves_bad_parts_to_the_general_path(self):
        self.assertIsNone(bulk.encode_elements((b"k",), ("text",), (None,)))
        self.assertIsNone(bulk.encode_elements((b"k",), (b"v",), (1.5,)))

    def test_one_byte_cells_decode_and_encode_in_bulk_only_when_they_are_their_value(self):
        cells = b"".join(b"\x01\x01\x00\x00\x00" + bytes((v,)) for v in (0, 5, 127))
        self.assertEqual(bulk.byte_values(cells, codec.U64.byte_limit), [0, 5, 127])
        self.assertIsNone(bulk.byte_values(cells, 0x7F))
        # An absent cell, or a two-byte one, takes the general path.
        self.assertIsNone(bulk.byte_values(b"\x00" + cells[:-1], 0x80))
        self.assertIsNone(bulk.byte_values(b"\x01\x02\x00\x00\x00\x80\x01", 0x80))
        self.assertEqual(bulk.byte_values(b"\x01\x01\x00\x00\x00\xc8", codec.U8.byte_limit), [200])

        values = [3, 127, 9]
        got = bulk.byte_updates([2, 0], 4, values, 0x80)
        want = bytearray()
        wire.write_update(want, 2, 4, codec.U64.encode(9))
        wire.write_update(want, 0, 4, codec.U64.encode(3))
        self.assertEqual(got, bytes(want))
        for bad in ([128, 0, 0], [-1, 0, 0], [1.0, 0, 0], [object(), 0, 0]):
            self.assertIsNone(bulk.byte_updates([0], 4, bad, 0x80))
        self.assertEqual(bulk.byte_updates([], 4, values, 0x80), b"")


if __name__ == "__main__":
    unittest.main()
