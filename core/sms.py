"""SMS senders. ``NONGDAI_SMS_SENDER`` picks one: ``"log"`` (the default) appends each message
to ``instance/sms.log`` so the demo runs without a gateway, or ``"package.module:ClassName"``
names a class whose instances have ``send(phone, body) -> None`` and raise on failure.

``instance/sms.log`` is a delivery channel, not the application log: the application log only
ever sees a masked phone number and the outbox message id.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Protocol

from flask import current_app

from core.db import utcnow


class Sender(Protocol):
    def send(self, phone: str, body: str) -> None: ...


def mask_phone(phone: str) -> str:
    """``13812341234`` -> ``138****1234``."""
    if len(phone) < 8:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


class LogFileSender:
    """Appends ``time<TAB>phone<TAB>body`` lines to a file (the demo's stand-in gateway)."""

    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, phone: str, body: str) -> None:
        line = f"{utcnow().isoformat()}\t{phone}\t{body}\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line)


def load_sender(spec: str, instance_path: str) -> Sender:
    if spec == "log":
        return LogFileSender(Path(instance_path) / "sms.log")
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError("NONGDAI_SMS_SENDER must be 'log' or 'package.module:ClassName'")
    sender_class = getattr(importlib.import_module(module_name), class_name)
    return sender_class()


def sender() -> Sender:
    """The configured sender, built once per application and setting."""
    spec = str(current_app.config["NONGDAI_SMS_SENDER"])
    cache: dict[str, Sender] = current_app.extensions.setdefault("nongdai_sms_senders", {})
    if spec not in cache:
        cache[spec] = load_sender(spec, current_app.instance_path)
    return cache[spec]
