#!/usr/bin/env python3
"""Exit 0 when every URL given answers 2xx within the timeout, 1 otherwise.

Installed as /usr/local/bin/http-healthcheck in the images built here, for Docker
healthchecks: slim Python images have neither curl nor wget, and Python is there.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0


def check(url: str) -> str | None:
    """None when the URL answers 2xx, otherwise the reason it does not."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        return str(error)


def main(urls: list[str]) -> int:
    if not urls:
        print("usage: http-healthcheck URL [URL...]", file=sys.stderr)
        return 2
    failures = {url: reason for url in urls if (reason := check(url)) is not None}
    for url, reason in failures.items():
        print(f"{url}: {reason}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
