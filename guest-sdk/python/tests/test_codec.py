"""The codec against docs/state-codec.md's examples: the Rust SDK's bytes."""

import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from weir_sdk import codec  # noqa: E402


class Examples(unittest.TestCase):
    def test_the_documented_examples(self):
        cases = [
            (codec.U64, 0, "00"),
            (codec.U64, 300, "ac02"),
            (codec.I64, -1, "01"),
            (codec.U8, 200, "c8"),
            (codec.I8, -2, "fe"),
            (codec.F64, 1.5, "000000000000f83f"),
            (codec.STR, "hé", "0368c3a9"),
            (codec.Option(codec.U64), 7, "0107"),
            (codec.List(codec.U64), [1, 2], "020102"),
            (codec.Tuple(codec.U64, codec.I64), (5, -3), "0505"),
        ]
        for c, value, hexed in cases:
            self.assertEqual(c.encode(value).hex(), hexed, value)
            self.assertEqual(c.decode(bytes.fromhex(hexed)), value)

    def test_extremes_round_trip(self):
        for c, values in [
            (codec.U64, [0, 127, 128, 2**64 - 1]),
            (codec.I64, [-(2**63), -1, 0, 1, 2**63 - 1]),
            (codec.U8, [0, 255]),
            (codec.I8, [-128, 127]),
            (codec.BOOL, [True, False]),
            (codec.BYTES, [b"", b"\x00\xff"]),
            (codec.Option(codec.STR), [None, "", "x"]),
        ]:
            for v in values:
                self.assertEqual(c.decode(c.encode(v)), v, v)
        self.assertTrue(math.isnan(codec.F64.decode(codec.F64.encode(float("nan")))))

    def test_bad_bytes_are_refused(self):
        for c, hexed in [
            (codec.U64, ""),
            (codec.U64, "80"),
            (codec.U64, "0000"),
            (codec.U32, "ffffffff7f"),
            (codec.U64, "80808080808080808080" + "00"),
            (codec.U16, "80808000"),
            (codec.BOOL, "02"),
            (codec.STR, "02ff"),
            (codec.Option(codec.U64), "02"),
            (codec.F64, "0000"),
        ]:
            with self.assertRaises(codec.CodecError, msg=hexed):
                c.decode(bytes.fromhex(hexed))

    def test_values_out_of_range_are_refused(self):
        for c, v in [(codec.U64, -1), (codec.U64, 2**64), (codec.I8, 128), (codec.U8, 256)]:
            with self.assertRaises(codec.CodecError):
                c.encode(v)


if __name__ == "__main__":
    unittest.main()
