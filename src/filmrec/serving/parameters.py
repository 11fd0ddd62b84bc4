"""The rules every string parameter of the API follows, stated once.

Each is a regular expression that goes into the OpenAPI document as the parameter's
`pattern` and is what the server checks, so a client (and the contract fuzzer)
knows exactly which values are refused with a 422.

Printable text only: PostgreSQL refuses a NUL in a string, and other control
characters are never part of a title or a genre. A database error is not what a
malformed parameter may earn (a 503, or a tripped circuit breaker for everyone).
"""

from __future__ import annotations

import re
from typing import Final

# One or more characters, none of them a C0 control character or DEL. The same
# meaning in every regex dialect (pydantic's Rust engine, Python's re, ECMA-262).
PRINTABLE_TEXT: Final = r"^[^\x00-\x1f\x7f]+$"

# A title search needs something to search for: at least one ASCII letter or digit, or
# any character beyond ASCII; and, like every string parameter, printable text only.
# Spelled without `\w` (whose letters differ between regex dialects and Unicode
# versions), so that the document and the server agree exactly. A query whose only
# non-ASCII characters are no letters (a dash, an emoji) passes and matches nothing.
SEARCH_TEXT: Final = r"^[^\x00-\x1f\x7f]*[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f][^\x00-\x1f\x7f]*$"
_SEARCH_TEXT = re.compile(SEARCH_TEXT)


def is_search_text(value: str) -> bool:
    """Whether `value` is all of SEARCH_TEXT (fullmatch: `$` alone would let a final
    line break through, which the pattern's character classes refuse)."""
    return _SEARCH_TEXT.fullmatch(value) is not None
