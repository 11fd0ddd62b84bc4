"""API keys: who may write (POST /ratings, admin operations) and, optionally, read.

Keys are configured hashed (`FILMREC_API_KEYS=name:sha256-hex,...`), so neither the
environment, the Compose file nor a leaked settings dump holds a usable key. Several
keys at once make rotation a two-step change: add the new entry, move the clients,
remove the old entry. With no key configured, the embedded default accepts exactly the
demo key (`FILMREC_DEMO_API_KEY`, `demo`), so a one-machine setup and its web page
work out of the box; it is ignored as soon as a real key is configured.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass

from filmrec.config import Settings
from filmrec.ingestion.contract import WRITER_NAME_PATTERN

HEADER = "X-API-Key"
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# A key's name is what each rating it writes records (written_by): the contract's rule.
_NAME = re.compile(WRITER_NAME_PATTERN)


class ApiKeyConfigError(ValueError):
    """FILMREC_API_KEYS is malformed (the API refuses to start rather than guess)."""


class ExposedDemoKeyError(SystemExit):
    """The public demo key on an address other hosts reach: refused at start."""


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (an address, or `localhost`)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def refuse_exposed_demo_key(settings: Settings, keyring: ApiKeyring) -> None:
    """Stop here when the demo key is on and API_HOST is not a loopback address.

    The demo key is public (it is in the docs), so on a reachable address anyone could
    write ratings. FILMREC_ALLOW_DEMO_KEY_ON_NETWORK=true says it is meant.
    """
    if keyring.demo and not is_loopback(settings.api_host) and not settings.allow_demo_key_on_network:
        raise ExposedDemoKeyError(
            f"refusing to start: the public demo API key is accepted and API_HOST={settings.api_host} "
            "is reachable from other hosts. Configure real keys (FILMREC_API_KEYS, "
            "`python -m filmrec api-key new`), or turn the demo key off (FILMREC_DEMO_API_KEY=), "
            "or bind to 127.0.0.1, or set FILMREC_ALLOW_DEMO_KEY_ON_NETWORK=true if this is meant."
        )


def hash_key(plain: str) -> str:
    """The hex SHA-256 of a key: what FILMREC_API_KEYS stores.

    A plain hash, not a slow password hash: keys are 32 random bytes (`new_key`), so
    there is nothing to brute-force, and every write request pays for the check.
    """
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes  # the raw SHA-256, compared in constant time


def parse_keys(text: str | None) -> tuple[ApiKey, ...]:
    """`name:sha256-hex` entries separated by commas (or whitespace); names are unique."""
    keys: list[ApiKey] = []
    for entry in re.split(r"[,\s]+", text or ""):
        if not entry:
            continue
        name, sep, digest = entry.partition(":")
        if not sep or not _NAME.fullmatch(name) or not _HEX_SHA256.fullmatch(digest.lower()):
            raise ApiKeyConfigError(
                f"FILMREC_API_KEYS entry {entry[:20]!r}...: expected name:sha256-hex "
                "(make one with `python -m filmrec api-key new`)"
            )
        if any(key.name == name for key in keys):
            raise ApiKeyConfigError(f"FILMREC_API_KEYS names {name!r} twice")
        keys.append(ApiKey(name=name, digest=bytes.fromhex(digest)))
    return tuple(keys)


class ApiKeyring:
    """The keys this process accepts; `identify` answers which one a request presented."""

    DEMO_NAME = "demo"

    def __init__(self, keys: tuple[ApiKey, ...], *, demo_key: str | None = None) -> None:
        self.demo = not keys and bool(demo_key)
        if self.demo and demo_key:
            keys = (ApiKey(self.DEMO_NAME, hashlib.sha256(demo_key.encode("utf-8")).digest()),)
        self.keys = keys

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeyring:
        return cls(parse_keys(settings.api_keys), demo_key=settings.demo_api_key)

    def identify(self, presented: str) -> str | None:
        """The name of the key `presented` is, or None.

        Every configured key is compared (no early exit) with hmac.compare_digest, so
        the time taken says nothing about which key, or how much of one, matched.
        """
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key.name
        return found
