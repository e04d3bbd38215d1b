"""E-mail over SMTP: the notice's plain text, one message to every recipient of the channel."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from alerts.channels import DeliveryError
from alerts.messages import Notice

# An SMTP exchange takes well under a second; a server that does not answer in this time is down.
SMTP_TIMEOUT = 20.0


def message(config: dict[str, Any], notice: Notice) -> EmailMessage:
    """The e-mail of a notice; its Message-ID carries the idempotency key."""
    msg = EmailMessage()
    msg["Subject"] = notice.title
    msg["From"] = str(config["sender"])
    recipients = config["to"]
    msg["To"] = ", ".join(recipients) if isinstance(recipients, list) else str(recipients)
    msg["Message-ID"] = make_msgid(idstring=str(notice.document["idempotency_key"]), domain="parkwatch")
    msg.set_content(notice.text)
    return msg


def _send(config: dict[str, Any], msg: EmailMessage) -> None:
    host = str(config["host"])
    tls = str(config.get("tls", "starttls" if int(config.get("port", 25)) == 587 else "none"))
    port = int(config.get("port", 465 if tls == "ssl" else 25))
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if tls == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
    with smtp:
        if tls == "starttls":
            smtp.starttls(context=context)
        if config.get("username"):
            smtp.login(str(config["username"]), str(config.get("password", "")))
        smtp.send_message(msg)


async def send(config: dict[str, Any], notice: Notice) -> None:
    """Send by SMTP in a worker thread (smtplib blocks)."""
    try:
        await asyncio.to_thread(_send, config, message(config, notice))
    except smtplib.SMTPResponseException as exc:
        # 4xx: try later (greylisting, a full queue); 5xx: the server will not take it.
        raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=exc.smtp_code < 500) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}", retryable=True) from exc
