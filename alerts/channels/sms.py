"""SMS (短信) through a cloud SMS gateway: a template id and its parameters, in a signed request.

The request is Alibaba Cloud's SendSms in its RPC form (docs/alerts.md), which other Chinese
gateways resemble: the parameters sorted and percent-encoded (RFC 3986), the string to sign
"POST&%2F&" + the encoded query, and Signature = base64(HMAC-SHA1(AccessKeySecret + "&", it)).
The template's variables are filled from the notice: ${kind}, ${station}, ${parameter},
${value}, ${limit}, ${time}, ${severity}; the channel's `template_params` names which to send.
Success is `{"Code": "OK"}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from alerts.channels import DeliveryError, http_failure, post
from alerts.messages import Notice

DEFAULT_PARAMS = ("kind", "station", "parameter", "value", "limit", "time")
# Codes that mean "not now" (flow control) rather than "never" (a bad number, a bad template).
RETRYABLE_CODES = {"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "isp.SYSTEM_ERROR", "ServiceUnavailable"}


def encode(text: str) -> str:
    """Percent-encoding as the signature wants it: RFC 3986 unreserved characters kept, the rest %XX."""
    return quote(text, safe="~")


def sign(params: dict[str, str], secret: str, method: str = "POST") -> str:
    """The Signature parameter of a request with these parameters."""
    canonical = "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{encode('/')}&{encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def request_params(config: dict[str, Any], notice: Notice, *, now: datetime | None = None) -> dict[str, str]:
    """Every parameter of the SendSms request, Signature included."""
    names = config.get("template_params") or DEFAULT_PARAMS
    params = {
        "AccessKeyId": str(config["access_key_id"]),
        "Action": "SendSms",
        "Format": "JSON",
        "RegionId": str(config.get("region", "cn-hangzhou")),
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": uuid.uuid4().hex,
        "SignatureVersion": "1.0",
        "Timestamp": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
        "PhoneNumbers": ",".join(str(p) for p in config["phones"]),
        "SignName": str(config["sign_name"]),
        "TemplateCode": str(config["template_code"]),
        "TemplateParam": json.dumps({n: notice.fields.get(n, "") for n in names}, ensure_ascii=False),
        "OutId": str(notice.document["idempotency_key"])[:64],
    }
    params["Signature"] = sign(params, str(config["access_key_secret"]))
    return params


async def send(config: dict[str, Any], notice: Notice, http: httpx.AsyncClient) -> None:
    """POST the signed form to the gateway and read its Code."""
    response = await post(http, str(config["url"]), data=request_params(config, notice))
    if not response.is_success and response.status_code != 400:
        raise http_failure(response)
    try:
        answer = response.json()
    except ValueError:
        raise DeliveryError("the SMS gateway answered something other than JSON", retryable=True) from None
    code = str(answer.get("Code", ""))
    if code == "OK":
        return
    raise DeliveryError(f"SMS refused: {code} {answer.get('Message', '')}", retryable=code in RETRYABLE_CODES)
