"""The SDK's batch loop, state handles and output against a fake host that
keeps state in dicts, as the real one does behind the WIT imports."""

import os
import struct
import sys
import unittest
from enum import Enum
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from weir_sdk import Aggregate, OpenError, Operator, codec, export_operator, wire  # noqa: E402
from weir_sdk.runtime import RUNTIME  # noqa: E402


class FakeHost:
    """State per (id, key, namespace); keys of the batch by slot."""

    class StateKind(Enum):
        VALUE = 0
        LIST = 1
        MAP = 2

    def __init__(self):
        self.declared = []
        self.values = {}
        self.lists = {}
        self.keys = []
        self.current = None
        self.emitted = []
        st = SimpleNamespace(StateKind=self.StateKind)
        st.declare = self.declare
        st.declare_with_ttl = lambda n, k, p, ttl: self.declare(n, k, p, ttl)
        st.select_key = lambda slot: setattr(self, "current", self.keys[slot])
        st.value_get = lambda i, ns: self.values.get((i, self.current, ns))
        st.value_set = lambda i, ns, v: self.values.__setitem__((i, self.current, ns), v)
        st.clear = lambda i, ns: self.values.pop((i, self.current, ns), None)
        st.list_get = lambda i, ns: list(self.lists.get((i, self.current, ns), []))
        st.list_add = lambda i, ns, v: self.lists.setdefault((i, self.current, ns), []).append(v)
        self.state = st
        self.output = SimpleNamespace(emit_batch=self.emitted.append, emit_side=None)
        self.columns = False
        self.batch_layout = SimpleNamespace(use_columns=lambda: setattr(self, "columns", True))

    def declare(self, name, kind, prefetch, ttl=None):
        self.declared.append((name, kind, prefetch, ttl))
        return len(self.declared) - 1

    def batch(self, elements):
        """A batch of (key, value) pairs: its elements in the column layout
        (which the SDK asks for in ``open``) with their slots, and the
        prefetched values of every prefetched state of its keys."""
        assert self.columns, "the SDK asks for the column layout in open"
        self.keys = []
        slots = []
        for key, value in elements:
            if key not in self.keys:
                self.keys.append(key)
            slots.append(self.keys.index(key))
        data = wire.write_columns([(k, v, 7) for k, v in elements], slots)
        prefetched = bytearray()
        ids = sorted(RUNTIME.prefetched_ids)
        for key in self.keys:
            for i in ids:
                v = self.values.get((i, key, b""))
                if v is None:
                    prefetched.append(0)
                else:
                    prefetched += b"\x01" + struct.pack("<I", len(v)) + v
        return SimpleNamespace(elements=data, key_slots=[], prefetched=bytes(prefetched))

    def apply(self, updates):
        """Applies what `process` returned, as the host does."""
        pos = 0
        while pos < len(updates):
            slot, sid, op = struct.unpack_from("<IIB", updates, pos)
            pos += 9
            key = self.keys[slot]
            if op == 0:
                self.values.pop((sid, key, b""), None)
            else:
                (n,) = struct.unpack_from("<I", updates, pos)
                pos += 4
                self.values[(sid, key, b"")] = updates[pos:pos + n]
                pos += n

    def output_values(self):
        return [(k, v) for b in self.emitted for k, v, _ in wire.read_elements(b)]


class Count(Operator):
    def __init__(self, ctx):
        self.count = ctx.value_state("count", codec.U64, ttl_ms=ctx.parse("ttl-ms"))

    def process(self, e, ctx):
        n = self.count.update(lambda n: (n or 0) + 1)
        ctx.emit(e.key, str(n).encode(), e.timestamp)


class Average(Aggregate):
    def create_accumulator(self):
        return (0, 0)

    def add(self, item, acc):
        return (acc[0] + item, acc[1] + 1)

    def get_result(self, acc):
        return acc[0] / acc[1]


class Kinds(Operator):
    def __init__(self, ctx):
        if ctx.get("fail"):
            raise OpenError("bad config")
        self.total = ctx.reducing_state("total", codec.I64, lambda a, b: a + b)
        self.avg = ctx.aggregating_state("avg", codec.Tuple(codec.I64, codec.U64), Average())
        self.seen = ctx.list_state("seen", codec.STR)

    def process(self, e, ctx):
        n = int(e.value)
        self.total.add(n)
        self.avg.add(n)
        self.seen.add(e.value.decode())
        ctx.emit(e.key, f"{self.total.get()} {self.avg.get()} {len(self.seen.get())}".encode())


EMPTY = []


class Appender(Operator):
    """Appends each value to its key's list, starting from one shared
    empty list: the SDK must not keep the list object itself."""

    def __init__(self, ctx):
        self.items = ctx.value_state("items", codec.List(codec.U64))

    def process(self, e, ctx):
        items = self.items.get()
        if items is None:
            self.items.set(EMPTY)
            items = self.items.get()
        items.append(int(e.value))
        self.items.set(items)


class Reuser(Operator):
    """Emits from one bytearray it overwrites for every element."""

    def __init__(self, ctx):
        self.buffer = bytearray(1)

    def process(self, e, ctx):
        self.buffer[0] = e.value[0]
        ctx.emit(memoryview(self.buffer), self.buffer)


class Big(Operator):
    """Emits a 100 KiB value per element."""

    def process(self, e, ctx):
        ctx.emit(e.key, e.value * 100 * 1024)


class Wrong(Operator):
    def process(self, e, ctx):
        ctx.emit(e.key, len(e.value))


def run(cls, config, batches):
    host = FakeHost()
    handler = export_operator(cls, host)()
    handler.open(config)
    for elements in batches:
        host.apply(handler.process(host.batch(elements)))
    return host


class Runtime(unittest.TestCase):
    def test_count_keeps_prefetched_state_across_batches_and_emits_once_a_batch(self):
        host = run(Count, [], [[(b"a", b"x"), (b"b", b"x"), (b"a", b"x")], [(b"a", b"x")]])
        self.assertEqual(
            host.output_values(),
            [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"a", b"3")],
        )
        self.assertEqual(len(host.emitted), 2)
        self.assertEqual(host.declared, [("count", FakeHost.StateKind.VALUE, True, None)])
        # The stored count is the Rust SDK's bytes for 3u64.
        self.assertEqual(host.values[(0, b"a", b"")], b"\x03")

    def test_ttl_is_declared(self):
        host = run(Count, [("ttl-ms", "5000")], [])
        self.assertEqual(host.declared, [("count", FakeHost.StateKind.VALUE, True, 5000)])

    def test_reducing_aggregating_and_list_state(self):
        host = run(Kinds, [], [[(b"k", b"2"), (b"k", b"4")], [(b"k", b"6"), (b"j", b"1")]])
        self.assertEqual(
            host.output_values(),
            [(b"k", b"2 2.0 1"), (b"k", b"6 3.0 2"), (b"k", b"12 4.0 3"), (b"j", b"1 1.0 1")],
        )
        # Both are value states, encoded like Rust's i64 and (i64, u64).
        self.assertEqual(host.values[(0, b"k", b"")], codec.I64.encode(12))
        self.assertEqual(host.values[(1, b"k", b"")], codec.Tuple(codec.I64, codec.U64).encode((12, 3)))

    def test_a_mutable_value_set_for_two_keys_stays_each_keys_own(self):
        host = run(Appender, [], [[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]])
        self.assertEqual(host.values[(0, b"a", b"")], codec.List(codec.U64).encode([1, 3]))
        self.assertEqual(host.values[(0, b"b", b"")], codec.List(codec.U64).encode([2]))

    def test_a_reused_bytearray_is_copied_at_emit(self):
        host = run(Reuser, [], [[(b"k", b"a"), (b"k", b"b"), (b"k", b"c")]])
        self.assertEqual(host.output_values(), [(b"a", b"a"), (b"b", b"b"), (b"c", b"c")])

    def test_output_is_flushed_by_size_within_a_batch(self):
        host = run(Big, [], [[(b"k", b"%d" % (i % 10)) for i in range(7)]])
        # 256 KiB a flush: three values of 100 KiB, three, then one.
        self.assertEqual([len(list(wire.read_elements(b))) for b in host.emitted], [3, 3, 1])
        self.assertEqual(len(host.output_values()), 7)

    def test_emitting_a_value_that_is_not_bytes_says_so(self):
        with self.assertRaisesRegex(TypeError, "value is a int"):
            run(Wrong, [], [[(b"k", b"x")]])

    def test_open_error_carries_its_message(self):
        with self.assertRaises(OpenError) as e:
            run(Kinds, [("fail", "1")], [])
        self.assertIn("bad config", str(e.exception))


if __name__ == "__main__":
    unittest.main()
