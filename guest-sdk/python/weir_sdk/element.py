"""The stream element handed to ``process``."""


class Element:
    """One stream element: ``key`` (bytes or None), ``value`` (bytes) and
    ``timestamp`` (event time in ms, or None)."""

    __slots__ = ("key", "value", "timestamp")

    def __init__(self, key, value, timestamp):
        self.key = key
        self.value = value
        self.timestamp = timestamp

    def value_str(self):
        """The value as UTF-8 text (undecodable bytes replaced)."""
        return self.value.decode("utf-8", "replace")

    def key_str(self):
        """The key as UTF-8 text, or None."""
        return None if self.key is None else self.key.decode("utf-8", "replace")

    def __repr__(self):
        return f"Element(key={self.key!r}, value={self.value!r}, timestamp={self.timestamp!r})"
