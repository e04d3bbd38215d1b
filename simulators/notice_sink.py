"""A local receiver for alert notices: a webhook, and stand-ins for the DingTalk, WeCom, Feishu and SMS services.

The demo starts it so that the kiln's alert has somewhere to go; the tests use it as the far end
of every HTTP channel. Each stand-in checks what it receives the way the real service documents
it (body schema, signature, timestamp window) and answers as that service does, so a notice the
sink accepts is one the service would accept. Checks are written here from the services'
documentation, independently of alerts/channels/ (docs/alerts.md). It records everything,
accepted or not, and can be told to fail, to test retries.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parkwatch.serve import serving_asgi

# The robots refuse signatures older than an hour (DingTalk's and Feishu's documentation).
SIGNATURE_WINDOW = 3600


@dataclass
class Received:
    """One request as the sink saw it."""

    service: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    accepted: bool
    problem: str | None = None
    at: float = field(default_factory=time.time)  # arrival, Unix seconds (the benchmark times notices by it)

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def summary(self) -> dict[str, Any]:
        """What GET /received shows."""
        try:
            body: Any = self.json()
        except ValueError:
            body = dict(parse_qsl(self.body.decode(errors="replace")))
        return {"service": self.service, "accepted": self.accepted, "problem": self.problem, "body": body}


@dataclass
class Secrets:
    """What the stand-ins check signatures with."""

    webhook: str | None = None
    dingtalk: str | None = None
    feishu: str | None = None
    sms_key_id: str = "demo-key"
    sms_key_secret: str = "demo-secret"  # noqa: S105 - the local stand-in's own test credential


@dataclass
class NoticeSink:
    """The receiver; `received` holds every request in arrival order."""

    secrets: Secrets = field(default_factory=Secrets)
    received: list[Received] = field(default_factory=list)
    _failures: dict[str, list[int]] = field(default_factory=dict)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def fail(self, service: str, statuses: list[int]) -> None:
        """Answer the next requests to `service` with these HTTP statuses (then normally)."""
        self._failures[service] = list(statuses)

    def accepted(self, service: str | None = None) -> list[Received]:
        """Accepted requests, of one service or all."""
        return [r for r in self.received if r.accepted and (service is None or r.service == service)]

    async def wait_for(self, count: int, service: str | None = None, seconds: float = 30.0) -> list[Received]:
        """Wait until at least `count` accepted requests (of `service`) have arrived."""
        async with asyncio.timeout(seconds):
            while len(self.accepted(service)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.accepted(service)

    def _record(self, request: Request, service: str, body: bytes, problem: str | None) -> None:
        self.received.append(
            Received(
                service=service,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                accepted=problem is None,
                problem=problem,
            )
        )
        self._arrived.set()

    def _injected(self, service: str) -> int | None:
        pending = self._failures.get(service)
        return pending.pop(0) if pending else None

    # -- the services ------------------------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        """A receiver of parkwatch's own webhook: HMAC-SHA256 over "<timestamp>.<body>"."""
        body = await request.body()
        if (status := self._injected("webhook")) is not None:
            self._record(request, "webhook", body, f"injected HTTP {status}")
            return JSONResponse({"error": "injected"}, status_code=status)
        problem = None
        if self.secrets.webhook:
            stamp = request.headers.get("x-parkwatch-timestamp", "")
            given = request.headers.get("x-parkwatch-signature", "")
            mac = hmac.new(self.secrets.webhook.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
            if not hmac.compare_digest(given, "sha256=" + mac.hexdigest()):
                problem = "bad signature"
            elif not stamp.isdigit() or abs(time.time() - int(stamp)) > SIGNATURE_WINDOW:
                problem = "stale timestamp"
        if not request.headers.get("idempotency-key"):
            problem = problem or "no Idempotency-Key"
        self._record(request, "webhook", body, problem)
        return JSONResponse({"ok": problem is None}, status_code=200 if problem is None else 401)

    async def dingtalk(self, request: Request) -> Response:
        """DingTalk custom robot: sign = urlencode(base64(HmacSHA256(secret, timestamp, newline, secret)))."""
        body = await request.body()
        if (status := self._injected("dingtalk")) is not None:
            self._record(request, "dingtalk", body, f"injected HTTP {status}")
            return JSONResponse({"errcode": -1, "errmsg": "system busy"}, status_code=status)
        problem = None
        if not request.query_params.get("access_token"):
            problem = "no access_token"
        elif self.secrets.dingtalk:
            stamp = request.query_params.get("timestamp", "")
            string_to_sign = f"{stamp}\n{self.secrets.dingtalk}"
            mac = hmac.new(self.secrets.dingtalk.encode(), string_to_sign.encode(), hashlib.sha256).digest()
            expected = base64.b64encode(mac).decode()
            # The query string arrives decoded once: the sign is the base64 text itself.
            if request.query_params.get("sign") != expected:
                problem = "sign not match"
            elif not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > SIGNATURE_WINDOW * 1000:
                problem = "timestamp out of range"
        if problem is None:
            problem = _check_dingtalk_body(body)
        self._record(request, "dingtalk", body, problem)
        if problem is None:
            return JSONResponse({"errcode": 0, "errmsg": "ok"})
        return JSONResponse({"errcode": 310000, "errmsg": problem})

    async def wecom(self, request: Request) -> Response:
        """WeCom group robot: the URL's key is the credential; markdown content at most 4,096 bytes."""
        body = await request.body()
        if (status := self._injected("wecom")) is not None:
            self._record(request, "wecom", body, f"injected HTTP {status}")
            return JSONResponse({"errcode": -1, "errmsg": "system busy"}, status_code=status)
        problem = None if request.query_params.get("key") else "invalid webhook url"
        if problem is None:
            try:
                doc = json.loads(body)
                if doc.get("msgtype") == "markdown":
                    content = doc["markdown"]["content"]
                elif doc.get("msgtype") == "text":
                    content = doc["text"]["content"]
                else:
                    content = None
                    problem = "invalid message type"
                if content is not None and not (0 < len(content.encode()) <= 4096):
                    problem = "content exceed max length"
            except (ValueError, KeyError, TypeError, AttributeError):
                problem = "invalid json"
        self._record(request, "wecom", body, problem)
        if problem is None:
            return JSONResponse({"errcode": 0, "errmsg": "ok"})
        return JSONResponse({"errcode": 93000 if "url" in problem else 40008, "errmsg": problem})

    async def feishu(self, request: Request) -> Response:
        """Feishu custom bot: sign = base64(HmacSHA256(key = timestamp, newline, secret; message empty))."""
        body = await request.body()
        if (status := self._injected("feishu")) is not None:
            self._record(request, "feishu", body, f"injected HTTP {status}")
            return JSONResponse({"code": 9499, "msg": "too many requests"}, status_code=status)
        problem = None
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
            problem = "invalid json"
        if doc is not None and self.secrets.feishu:
            stamp = str(doc.get("timestamp", ""))
            key = f"{stamp}\n{self.secrets.feishu}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= SIGNATURE_WINDOW
            if doc.get("sign") != expected or not fresh:
                problem = "sign match fail or timestamp is not within one hour from current time"
        if doc is not None and problem is None:
            kind = doc.get("msg_type")
            if kind == "text" and not (isinstance(doc.get("content"), dict) and doc["content"].get("text")):
                problem = "text content empty"
            elif kind not in ("text", "post", "interactive"):
                problem = "msg_type invalid"
        self._record(request, "feishu", body, problem)
        if problem is None:
            return JSONResponse({"code": 0, "msg": "success", "data": {}})
        return JSONResponse({"code": 19021 if "sign" in problem else 9499, "msg": problem, "data": {}})

    async def sms(self, request: Request) -> Response:
        """An SMS gateway speaking Alibaba Cloud's SendSms: form parameters and a HMAC-SHA1 Signature."""
        body = await request.body()
        if (status := self._injected("sms")) is not None:
            self._record(request, "sms", body, f"injected HTTP {status}")
            return JSONResponse({"Code": "ServiceUnavailable", "Message": "injected"}, status_code=status)
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        problem = None
        required = ("AccessKeyId", "Action", "PhoneNumbers", "SignName", "TemplateCode", "Signature", "Timestamp")
        missing = [k for k in required if not params.get(k)]
        if missing:
            problem = "MissingParameter: " + ", ".join(missing)
        elif params["AccessKeyId"] != self.secrets.sms_key_id:
            problem = "InvalidAccessKeyId.NotFound"
        else:
            given = params.pop("Signature")

            def enc(text: str) -> str:
                return quote(text, safe="-_.~")

            canonical = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()))
            string_to_sign = "POST&%2F&" + enc(canonical)
            key = f"{self.secrets.sms_key_secret}&".encode()
            expected = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha1).digest()).decode()
            if given != expected:
                problem = "SignatureDoesNotMatch"
            else:
                try:
                    template = json.loads(params.get("TemplateParam") or "{}")
                    if not isinstance(template, dict) or any(len(str(v)) > 35 for v in template.values()):
                        problem = "isv.INVALID_JSON_PARAM"
                except ValueError:
                    problem = "isv.INVALID_JSON_PARAM"
        self._record(request, "sms", body, problem)
        request_id = str(uuid.uuid4())
        if problem is None:
            biz = uuid.uuid4().hex[:20]
            return JSONResponse({"Code": "OK", "Message": "OK", "BizId": biz, "RequestId": request_id})
        refusal = {"Code": problem.split(":")[0], "Message": problem, "RequestId": request_id}
        return JSONResponse(refusal, status_code=400)

    async def listing(self, _request: Request) -> Response:
        """Everything received, newest last (the demo points here)."""
        return JSONResponse([r.summary() for r in self.received], media_type="application/json; charset=utf-8")

    def app(self) -> Starlette:
        """The ASGI application."""
        return Starlette(
            routes=[
                Route("/webhook", self.webhook, methods=["POST"]),
                Route("/dingtalk/robot/send", self.dingtalk, methods=["POST"]),
                Route("/wecom/cgi-bin/webhook/send", self.wecom, methods=["POST"]),
                Route("/feishu/open-apis/bot/v2/hook/{token}", self.feishu, methods=["POST"]),
                Route("/sms/", self.sms, methods=["POST"]),
                Route("/received", self.listing, methods=["GET"]),
            ]
        )


def _check_dingtalk_body(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return "invalid json"
    kind = doc.get("msgtype")
    if kind == "markdown":
        markdown = doc.get("markdown") or {}
        if not markdown.get("title") or not markdown.get("text"):
            return "markdown needs title and text"
    elif kind == "text":
        if not (doc.get("text") or {}).get("content"):
            return "text content empty"
    else:
        return "unsupported msgtype"
    return None


@contextlib.asynccontextmanager
async def serving(sink: NoticeSink, port: int, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve the sink in this event loop for the block; yields its base URL."""
    async with serving_asgi(sink.app(), host, port):
        yield f"http://{host}:{port}"
