"""Settings from files, the way Docker and Kubernetes hand secrets to a container.

Any variable read by ``config/settings.py`` can be given as ``<NAME>_FILE=/run/secrets/name``
instead of ``<NAME>=value``: the file's content is the value, with surrounding white space (the
newline that ``echo`` and editors leave) removed. The secret then never sits in the process's
environment, where child processes, ``/proc/<pid>/environ`` and crash reports would see it.

Loud rather than surprising: both ``NAME`` and ``NAME_FILE`` set, an unreadable file or an empty
one stop the start-up with a message naming the variable (never the value).
"""

import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured


class SecretFileEnviron(MutableMapping[str, str]):
    """``os.environ`` seen through ``<NAME>_FILE``; reads a file once."""

    def __init__(self, environ_: MutableMapping[str, str] | None = None) -> None:
        self.env = os.environ if environ_ is None else environ_
        self._read: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        path = self.env.get(f"{key}_FILE")
        if not path:
            return self.env[key]
        if key in self._read:
            return self._read[key]
        if self.env.get(key):
            raise ImproperlyConfigured(f"{key} and {key}_FILE are both set: keep one of them.")
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ImproperlyConfigured(f"{key}_FILE: cannot read {path} ({reason}).") from None
        if not value:
            raise ImproperlyConfigured(f"{key}_FILE: {path} is empty.")
        self._read[key] = value
        return value

    def __setitem__(self, key: str, value: str) -> None:
        self.env[key] = value

    def __delitem__(self, key: str) -> None:
        del self.env[key]

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for key in self.env:
            seen.add(key)
            yield key
        for key in list(self.env):
            name = key.removesuffix("_FILE")
            if key.endswith("_FILE") and name and name not in seen:
                seen.add(name)
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)


def secret_file_env(environ_: MutableMapping[str, str] | None = None) -> environ.Env:
    env = environ.Env()
    env.ENVIRON = SecretFileEnviron(environ_)
    return env
