"""Title search in the metadata database: one normalised form for titles and queries.

Titles are normalised once, when the sync writes them (`search_title`), and a query
the same way when it arrives, so the database compares plain lower-case ASCII-ish
words: "Amélie" and "AMELIE" both become "amelie", "Monsters, Inc." becomes
"monsters inc". Ranking happens in SQL (see MovieStore.search), never in Python.
"""

from __future__ import annotations

import re
import unicodedata

# Anything that is not a letter or a digit separates words. Because of this, a
# normalised query can never contain LIKE's wildcards (% and _): no escaping needed.
_NON_WORD = re.compile(r"[\W_]+")


def normalise_title(text: str) -> str:
    """Lower-case, accents stripped, words separated by single spaces."""
    # NFKD splits "é" into "e" + a combining accent, which is then dropped; casefold
    # handles "ß" -> "ss". Letters without an ASCII decomposition (Cyrillic, CJK) stay.
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_NON_WORD.sub(" ", stripped).split())


def like_patterns(query: str) -> tuple[str, str, str]:
    """(title prefix, word prefix, substring) LIKE patterns of a normalised query."""
    return f"{query}%", f"% {query}%", f"%{query}%"
