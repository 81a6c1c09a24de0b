"""A fake SMS provider for the fault tests, used by worker processes through ``SMS_BACKEND``.

It stands for the provider at the other end of the wire, and it keeps its books in files, so that
they survive the worker the test kills:

- ``attempts.log``: one line per call (``key<TAB>to``), duplicates included: what reached the
  provider;
- ``accepted/<sha256 of the key>``: the messages it accepted, one file per idempotency key, created
  with ``O_EXCL``. Like a provider that honours idempotency keys, a key it already accepted is not
  delivered again: the first message's provider id is returned.

``FAKE_SMS_BLOCK`` (``"<n>:before"`` or ``"<n>:after"``) makes this process's n-th call write the
file ``blocked`` and then wait until it is killed, before or after the provider accepted the
message: the test's deterministic moment for ``SIGKILL``.
"""

import hashlib
import os
import time
import uuid
from pathlib import Path

from booking.sms import BaseSmsBackend

_calls = 0  # calls in this process


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _block_here(phase: str) -> None:
    spec = os.environ.get("FAKE_SMS_BLOCK", "")
    if spec and spec == f"{_calls}:{phase}":
        _append(Path(os.environ["FAKE_SMS_DIR"]) / "blocked", f"{os.getpid()} {spec}\n")
        while True:  # until SIGKILL
            time.sleep(1)


class FileSmsProvider(BaseSmsBackend):
    def send(self, to: str, body: str, idempotency_key: str) -> str:
        global _calls
        _calls += 1
        folder = Path(os.environ["FAKE_SMS_DIR"])
        _append(folder / "attempts.log", f"{idempotency_key}\t{to}\n")
        _block_here("before")
        accepted = folder / "accepted" / hashlib.sha256(idempotency_key.encode()).hexdigest()
        accepted.parent.mkdir(exist_ok=True)
        try:
            fd = os.open(accepted, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return accepted.read_text().split("\t")[0]  # already accepted: not delivered again
        provider_id = f"fake-{uuid.uuid4().hex}"
        try:
            os.write(fd, f"{provider_id}\t{idempotency_key}\t{to}\n".encode())
        finally:
            os.close(fd)
        _block_here("after")
        return provider_id


def accepted_messages(folder: Path) -> list[tuple[str, str, str]]:
    """(provider id, key, to) of every message the provider accepted (delivered to a phone)."""
    accepted = folder / "accepted"
    rows = [p.read_text().strip().split("\t") for p in accepted.iterdir()] if accepted.exists() else []
    return [(r[0], r[1], r[2]) for r in rows]


def attempts(folder: Path) -> list[tuple[str, str]]:
    log = folder / "attempts.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(line.split("\t")[0], line.split("\t")[1]) for line in lines]
