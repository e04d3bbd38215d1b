"""Notice channels without a network: signatures checked against OpenSSL, bodies, redaction, routing specs.

OpenSSL is an implementation independent of ours: each signature the channels compute is
recomputed here by `openssl dgst -hmac` from the service's documented recipe.
"""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from alerts.channels import robots, sms, webhook
from alerts.messages import Notice, render
from schemas.alerting import ChannelSpec, RouteSpec, expand_env, redact
from schemas.registry import RegistryFile


def openssl_hmac(algorithm: str, key: bytes, message: bytes) -> bytes:
    """HMAC by OpenSSL, the key passed in hex so that any byte (a newline) survives."""
    out = subprocess.run(
        ["openssl", "dgst", f"-{algorithm}", "-mac", "HMAC", "-macopt", f"hexkey:{key.hex()}", "-binary"],
        input=message,
        capture_output=True,
        check=True,
    )
    return out.stdout


NOTICE = Notice(
    title="【parkwatch】超标报警",
    text="【parkwatch】超标报警\n站点：水泥窑1#",
    markdown="### 【parkwatch】超标报警\n\n**站点**：水泥窑1#",
    document={"idempotency_key": "parkwatch-notification-7", "event": {"kind": "raised"}, "alert": {"id": 1}},
    fields={
        "kind": "超标报警",
        "station": "水泥窑1#",
        "parameter": "二氧化硫",
        "value": "250",
        "limit": "200",
        "time": "2026-12-02 08:00",
    },
)


def test_dingtalk_signature_is_the_documented_one() -> None:
    """sign = urlencode(base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)))."""
    secret, ts = "SECabc123", "1764662400000"
    expected = quote_plus(base64.b64encode(openssl_hmac("sha256", secret.encode(), f"{ts}\n{secret}".encode())))
    assert robots.dingtalk_sign(secret, ts) == expected
    url, body = robots.request(
        "dingtalk",
        {"url": "https://oapi.dingtalk.com/robot/send?access_token=t", "secret": secret},
        NOTICE,
        now=1764662400.0,
    )
    query = parse_qs(urlsplit(url).query)
    assert query["timestamp"] == [ts] and query["access_token"] == ["t"]
    assert quote_plus(query["sign"][0]) == expected
    assert body == {"msgtype": "markdown", "markdown": {"title": NOTICE.title, "text": NOTICE.markdown}}


def test_feishu_signature_keys_the_hmac_with_timestamp_and_secret() -> None:
    """sign = base64(HMAC-SHA256(key=timestamp + "\\n" + secret, msg=empty)); timestamp in seconds, in the body."""
    secret, ts = "feishu-secret", "1764662400"
    expected = base64.b64encode(openssl_hmac("sha256", f"{ts}\n{secret}".encode(), b"")).decode()
    assert robots.feishu_sign(secret, ts) == expected
    _, body = robots.request(
        "feishu", {"url": "https://open.feishu.cn/open-apis/bot/v2/hook/x", "secret": secret}, NOTICE, now=1764662400.9
    )
    assert body == {"timestamp": ts, "sign": expected, "msg_type": "text", "content": {"text": NOTICE.text}}


def test_wecom_body_is_markdown_with_the_key_in_the_url() -> None:
    url, body = robots.request("wecom", {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"}, NOTICE)
    assert url.endswith("key=K")
    assert body == {"msgtype": "markdown", "markdown": {"content": NOTICE.markdown}}
    assert len(body["markdown"]["content"].encode()) <= 4096


def test_webhook_signature_covers_timestamp_and_body() -> None:
    body = b'{"a":1}'
    expected = "sha256=" + openssl_hmac("sha256", b"wh-secret", b"1764662400." + body).hex()
    assert webhook.signature("wh-secret", "1764662400", body) == expected


def test_sms_request_is_signed_over_its_canonical_form() -> None:
    """Sorted, RFC 3986-encoded parameters; "POST&%2F&" + encoded query; HMAC-SHA1 with secret + "&"."""
    assert sms.encode("a b*c~d+中") == "a%20b%2Ac~d%2B%E4%B8%AD"
    config = {
        "url": "https://dysmsapi.aliyuncs.com/",
        "access_key_id": "id",
        "access_key_secret": "sec",
        "sign_name": "园区环保",
        "template_code": "SMS_1",
        "phones": ["13800000000", "13900000000"],
    }
    params = sms.request_params(config, NOTICE, now=datetime(2026, 12, 2, 8, tzinfo=UTC))
    assert params["Timestamp"] == "2026-12-02T08:00:00Z"
    assert params["PhoneNumbers"] == "13800000000,13900000000"
    assert params["OutId"] == "parkwatch-notification-7"
    given = params.pop("Signature")
    canonical = "&".join(
        f"{quote_plus(k, safe='~').replace('+', '%20')}={quote_plus(v, safe='~').replace('+', '%20')}"
        for k, v in sorted(params.items())
    )
    to_sign = "POST&%2F&" + quote_plus(canonical, safe="~").replace("+", "%20")
    assert given == base64.b64encode(openssl_hmac("sha1", b"sec&", to_sign.encode())).decode()


def test_redaction_hides_secrets_and_url_tokens() -> None:
    shown = redact(
        {"url": "https://oapi.dingtalk.com/robot/send?access_token=abc&x=1", "secret": "SEC1", "phones": ["1"]}
    )
    assert shown == {
        "url": "https://oapi.dingtalk.com/robot/send?access_token=***&x=1",
        "secret": "***",
        "phones": ["1"],
    }
    assert redact({"url": "https://open.feishu.cn/open-apis/bot/v2/hook/tok-en"})["url"].endswith("/hook/***")
    assert redact({"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"})["url"].endswith("key=***")
    assert redact({"password": "p", "access_key_secret": "s"}) == {"password": "***", "access_key_secret": "***"}
    # credentials in the address, and header blocks (an outside review found both shown)
    shown = redact({"url": "https://user:hookpass@hooks.example/p1?token=t", "headers": {"Authorization": "Bearer b"}})
    assert shown == {"url": "https://***@hooks.example/p1?token=***", "headers": {"Authorization": "***"}}


def test_channel_settings_are_checked_and_secrets_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DING_SECRET", "SECfromenv")
    spec = ChannelSpec.model_validate(
        {"id": "d", "kind": "dingtalk", "url": "https://x/?access_token=t", "secret": "${DING_SECRET}"}
    )
    assert spec.config()["secret"] == "SECfromenv"
    with pytest.raises(ValueError, match="needs access_key_id"):
        ChannelSpec.model_validate({"id": "s", "kind": "sms", "url": "https://x/"})
    with pytest.raises(ValueError, match="http:// or https://"):
        ChannelSpec.model_validate({"id": "w", "kind": "webhook", "url": "ftp://x"})
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE"):
        expand_env("${NOT_SET_ANYWHERE}")


def test_routes_read_durations_and_refuse_nonsense() -> None:
    assert RouteSpec.model_validate({"channels": ["a"], "repeat_every": "2h"}).repeat_every == timedelta(hours=2)
    assert RouteSpec.model_validate({"channels": ["a"]}).families[0].value == "exceedance"
    for bad in (
        {"channels": []},
        {"channels": ["a"], "repeat_every": "soon"},
        {"channels": ["a"], "min_severity": "x"},
        {"channels": ["a"], "families": ["weather"]},
    ):
        with pytest.raises(ValueError):
            RouteSpec.model_validate(bad)
    with pytest.raises(ValueError, match="channel id 'a' appears twice"):
        RegistryFile.model_validate({"channels": [{"id": "a", "kind": "mqtt"}, {"id": "a", "kind": "mqtt"}]})


def _row(**over: Any) -> dict[str, Any]:
    base = {
        "id": 7,
        "alert_id": 3,
        "event_id": 11,
        "event_kind": "raised",
        "event_at": datetime(2026, 12, 2, 1, tzinfo=UTC),
        "event_detail": '{"window_start": "2026-12-02T00:00:00+00:00", "window_end": "2026-12-02T01:00:00+00:00", '
        '"value": 314.2, "exceedance_multiple": 0.571}',
        "rule": "exceedance.hour",
        "family": "exceedance",
        "status": "active",
        "severity": "major",
        "first_seen": datetime(2026, 12, 2, 0, tzinfo=UTC),
        "last_seen": datetime(2026, 12, 2, 1, tzinfo=UTC),
        "occurrences": 1,
        "value": 314.2,
        "limit_value": 200.0,
        "unit": "mg/m³",
        "standard": "GB4915-2013",
        "clause": '{"table": "Table 1", "item": "二氧化硫"}',
        "exceedance_multiple": 0.571,
        "details": '{"window_kind": "hour"}',
        "late": False,
        "station_id": "cs-p1-cement-k1",
        "station_name": "水泥窑1#",
        "timezone": "Asia/Shanghai",
        "park_id": "cs-p1",
        "park_name": "长沙经开区",
        "city": "长沙",
        "parameter": "a21026",
        "parameter_zh": "二氧化硫",
    }
    return {**base, **over}


def test_notice_text_says_what_where_how_much_and_by_which_clause() -> None:
    notice = render(_row(), "http://pw.example")  # type: ignore[arg-type]
    assert notice.title == "【parkwatch】超标报警"
    for fact in (
        "长沙经开区（长沙）",
        "水泥窑1#（cs-p1-cement-k1）",
        "二氧化硫（a21026）",
        "2026-12-02 08:00 至 2026-12-02 09:00（小时均值）",
        "314.2 mg/m³，限值 200 mg/m³，超标 0.57 倍",
        "GB4915-2013 Table 1 二氧化硫",
        "等级：较重",
        "http://pw.example/api/v1/alerts/3",
    ):
        assert fact in notice.text, fact
    assert notice.document["alert"]["url"] == "http://pw.example/api/v1/alerts/3"
    assert notice.fields["station"] == "水泥窑1#" and notice.fields["value"] == "314.2"
    cleared = render(_row(event_kind="cleared", event_detail='{"reason": "compliant"}', status="cleared"), "http://x")  # type: ignore[arg-type]
    assert cleared.title == "【parkwatch】超标报警已解除" and "监测值已恢复达标" in cleared.text
    offline = render(
        _row(
            rule="data_quality.offline",
            family="data_quality",
            parameter=None,
            parameter_zh=None,  # type: ignore[arg-type]
            event_detail="{}",
        ),
        "http://x",
    )
    assert offline.title == "【parkwatch】站点离线" and "最后数据" in offline.text
