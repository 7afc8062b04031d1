"""`count` in Python: emits the running count of each key, as decimal text.

Input: a keyed stream (`partition: hash`). Output: for every element, its key
with the number of elements seen so far for that key.

Config: `ttl-ms` (optional) forgets a key's count that many milliseconds
after its last element (state time-to-live), so it counts again from 1.
`per-record: true` reads and writes the count through a host call for every
element instead of with the batch (the slow path, for `weir bench
languages`).

Its state is the Rust `count`'s (a value state named `count` holding a
u64), so a checkpoint of one restores into the other.
"""

from weir_sdk import Operator, codec, export_operator


class Count(Operator):
    def __init__(self, ctx):
        per_record = ctx.get("per-record") == "true"
        self.count = ctx.value_state(
            "count", codec.U64, prefetch=not per_record, ttl_ms=ctx.parse("ttl-ms")
        )

    def process(self, e, ctx):
        n = self.count.update(plus_one)
        ctx.emit(e.key, b"%d" % n, e.timestamp)


def plus_one(n):
    """The count after one more element (None: the first)."""
    return (n or 0) + 1


Handler = export_operator(Count)
