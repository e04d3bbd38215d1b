"""Work-chat robots park operators already watch: DingTalk, WeCom (企业微信) and Feishu custom robots.

Each is a webhook with its own body and signature (docs/alerts.md):
- DingTalk: markdown message; with a 加签 secret, `timestamp` (ms) and `sign` =
  urlencode(base64(HMAC-SHA256(key=secret, msg=timestamp + newline + secret))) added to the URL.
  Success is `{"errcode": 0}`.
- WeCom group robot: markdown message; the URL's `key` is the credential, no signature.
  Success is `{"errcode": 0}`.
- Feishu: text message; with a secret, `timestamp` (s) and `sign` =
  base64(HMAC-SHA256(key=timestamp + newline + secret, msg="")) in the body. Success is
  `{"code": 0}` (older robots answer `{"StatusCode": 0}`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote_plus

import httpx

from alerts.channels import DeliveryError, http_failure, post
from alerts.messages import Notice

# Error codes that mean "too many messages, later" rather than "this will never work".
RATE_LIMITED = {
    "dingtalk": {130101},  # send too fast
    "wecom": {45009, 45033},  # api frequency out of limit
    "feishu": {9499, 11232},  # too many requests, frequency limited
}


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk's `sign` URL parameter, already URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def feishu_sign(secret: str, timestamp_s: str) -> str:
    """Feishu's `sign` body field: the HMAC key is timestamp and secret, the message empty."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def request(kind: str, config: dict[str, Any], notice: Notice, now: float | None = None) -> tuple[str, dict[str, Any]]:
    """The URL and JSON body a robot of `kind` takes for this notice."""
    now = time.time() if now is None else now
    url = str(config["url"])
    secret = config.get("secret")
    if kind == "dingtalk":
        body: dict[str, Any] = {"msgtype": "markdown", "markdown": {"title": notice.title, "text": notice.markdown}}
        mobiles = [str(m) for m in config.get("at_mobiles", [])]
        if mobiles:
            body["markdown"]["text"] += "\n\n" + " ".join(f"@{m}" for m in mobiles)
            body["at"] = {"atMobiles": mobiles, "isAtAll": False}
        if secret:
            ts = str(int(now * 1000))
            url += ("&" if "?" in url else "?") + f"timestamp={ts}&sign={dingtalk_sign(str(secret), ts)}"
        return url, body
    if kind == "wecom":
        return url, {"msgtype": "markdown", "markdown": {"content": notice.markdown}}
    body = {"msg_type": "text", "content": {"text": notice.text}}
    if secret:
        ts = str(int(now))
        body = {"timestamp": ts, "sign": feishu_sign(str(secret), ts), **body}
    return url, body


async def send(kind: str, config: dict[str, Any], notice: Notice, http: httpx.AsyncClient) -> None:
    """Post to the robot and read its verdict from the body (robots answer HTTP 200 to refusals too)."""
    url, body = request(kind, config, notice)
    response = await post(http, url, json=body)
    if not response.is_success:
        raise http_failure(response)
    try:
        answer = response.json()
    except ValueError:
        raise DeliveryError(f"{kind} answered something other than JSON", retryable=True) from None
    code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
    if code == 0:
        return
    message = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
    raise DeliveryError(f"{kind} refused it: {code} {message}", retryable=code in RATE_LIMITED[kind])
