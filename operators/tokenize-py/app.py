"""`tokenize` in Python: splits each line into words and emits one element
per word, keyed by the lower-cased word, with the value `1`.

The rule: a word is a run of letters, digits or `_` (Python's `\\w`), with
apostrophes inside it kept (`don't`), lower-cased with Python's full case
mapping. Unlike the Rust `tokenize` (Unicode word boundaries, UAX #29), a
run of CJK characters stays one word.
"""

import re

from weir_sdk import Operator, export_operator

WORD = re.compile(r"\w+(?:['\u2019]\w+)*")


class Tokenize(Operator):
    def __init__(self, ctx):
        pass

    def process(self, e, ctx):
        for word in WORD.findall(e.value.decode("utf-8", "replace")):
            ctx.emit(word.lower().encode(), b"1", e.timestamp)


Handler = export_operator(Tokenize)
