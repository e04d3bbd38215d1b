"""What a notice says: title, plain text and Markdown in Chinese, and the JSON document webhooks and MQTT carry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

SEVERITY_ZH = {"advisory": "提示", "warning": "一般", "major": "较重", "critical": "严重"}
WINDOW_ZH = {
    "hour": "小时均值",
    "day": "日均值",
    "1h": "1小时平均",
    "8h": "8小时滑动平均",
    "24h": "24小时平均",
}
CLEAR_REASON_ZH = {
    "compliant": "监测值已恢复达标",
    "judged": "时段已判定（见超标报警）",
    "receded": "滚动均值已回落至限值以下",
    "window_ended": "时段已结束",
    "values_move": "监测值恢复波动",
    "data_valid_again": "数据已恢复有效",
    "pattern_ended": "可疑模式已不再出现",
    "revised": "数据修正后不再超标",
    "data_returned": "站点数据已恢复",
    "resolved": "已人工处置",
    "values_in_range": "一小时内未再出现超量程数值",
    "clock_on_time": "数采仪时钟已恢复准确",
    "one_path": "两小时内仅经一条路径上报",
    "target_met": "指标已回到目标以内",
    "projection_within_cap": "按当前速率预计全年排放量不再超出许可量",
    "new_year": "新的核算年度开始",
}
PERIOD_ZH = {"day": "日", "month": "月", "quarter": "季度", "year": "年"}
DEFAULT_ZONE = "Asia/Shanghai"
# The heading of a notice, by family (or rule) and by what happened.
TITLES = {
    "raised": "{what}",
    "activated": "{what}",
    "severity_raised": "{what}（等级升高）",
    "reminder": "{what}（持续中，提醒）",
    "escalated": "{what}（未确认，升级督办）",
    "explanation_overdue": "情况说明逾期",
    "cleared": "{what}已解除",
    "test": "通道测试",
}
# What a data-quality or suspicious-data alert means, in a line.
MEANING = {
    "data_quality.missing_parameter": "站点在报其他因子，该因子连续数小时无数据",
    "data_quality.flatline": "该因子数值连续数小时恒定不变（疑似仪器卡滞）",
    "data_quality.invalid_flags": "该因子连续数小时以无效标记为主（故障、校准、维护、手工或通讯异常）",
    "data_quality.out_of_range": "上报数值超出仪器量程或物理可能范围，已拒收（仪器或数采仪配置异常）",
    "data_quality.clock_drift": "数采仪时钟与平台时间偏差过大，数据时间标记不可信",
    "data_quality.two_paths": "同一站点的数据同时经 MQTT（JSON）与 HJ 212 两条路径上报，每条读数只存先到的一份",
    "suspicious.pinned_below_limit": "判定值长期贴近限值（限值九成以上）且从不超标",
    "suspicious.flag_near_limit": "数值接近限值后，随即出现大量无效标记（校准、维护或故障）",
    "suspicious.drop_with_flow_stop": "排放流量骤停的同一小时，浓度骤降过半",
}
WHAT = {
    "exceedance": "超标报警",
    "early_warning": "超标预警",
    "data_quality.offline": "站点离线",
    "data_quality.missing_parameter": "因子缺测",
    "data_quality.flatline": "数据恒值",
    "data_quality.invalid_flags": "数据标记异常",
    "data_quality.out_of_range": "数据超量程",
    "data_quality.clock_drift": "数采仪时钟偏差",
    "data_quality.two_paths": "数据双路径上报",
    "data_quality": "数据异常",
    "suspicious": "数据可疑",
    "watchdog": "系统异常",
    "kpi.treatment_rate": "污水处理率未达标",
    "kpi.compliance_rate": "出水达标率未达标",
    "kpi.solid_waste_rate": "固废处置利用率未达标",
    "kpi.effective_transmission_rate": "数据有效传输率未达标",
    "kpi.cap_projected": "预计超出年度许可排放量",
    "kpi.cap_exceeded": "超出年度许可排放量",
    "kpi": "考核指标预警",
}
# The figures a KPI alert names (docs/kpis.md), in a notice's words.
KPI_FIGURE_ZH = {
    "treatment_rate": "污水处理率",
    "compliance_rate": "出水达标率",
    "solid_waste_rate": "工业固废处置利用率",
    "effective_transmission_rate": "有效传输率",
}


@dataclass(frozen=True)
class Notice:
    """One notice, ready for any channel."""

    title: str
    text: str  # plain, one fact a line: SMS, e-mail, Feishu
    markdown: str  # DingTalk and WeCom
    document: dict[str, Any]  # webhook and MQTT body
    fields: dict[str, str]  # short values for SMS templates


def _duration_zh(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} 小时"
    return f"{round(seconds / 60)} 分钟"


def _what(rule: str, family: str) -> str:
    return WHAT.get(rule) or WHAT.get(family, "报警")


def _local(ts: datetime | None, zone: str) -> str:
    return ts.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") if ts else "—"


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _kpi_facts(details: dict[str, Any]) -> list[tuple[str, str]]:
    """A KPI alert's figure against its target, over its period."""
    span = f"{details.get('period_start', '')}（{PERIOD_ZH.get(details.get('period', ''), '')}）"
    if "cap_kg" in details:
        what = f"{_num(details.get('value'))} kg，许可 {_num(details['cap_kg'])} kg"
        if details.get("projected_kg") is not None:
            what += f"，预计全年 {_num(details['projected_kg'])} kg"
        return [("核算年度", span), ("排放量", what)]
    name = KPI_FIGURE_ZH.get(details.get("figure", ""), details.get("figure", ""))
    value, target = details.get("value"), details.get("target")
    line = f"{_percent(value)}，目标 ≥ {_percent(target)}"
    return [("考核期", span), (name or "指标", line)]


def _percent(value: Any) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, int | float) else "—"


def render(row: asyncpg.Record, public_url: str) -> Notice:
    """The notice of one outbox row (the dispatcher's claim: notification, event, alert, station)."""
    # A park's alert (a KPI) has no station: its times are shown in the province's zone.
    zone = row["timezone"] or DEFAULT_ZONE
    detail = _json(row["event_detail"]) or {}
    clause = _json(row["clause"]) or {}
    what = _what(row["rule"], row["family"])
    title = "【parkwatch】" + TITLES.get(row["event_kind"], "{what}").format(what=what)
    link = f"{public_url}/api/v1/alerts/{row['alert_id']}"
    parameter = row["parameter_zh"] or row["parameter"] or ""
    station = row["station_name"] or row["station_id"]
    facts: list[tuple[str, str]] = [("园区", f"{row['park_name']}（{row['city']}）")]
    if row["station_id"] is not None:
        facts.append(("站点", f"{station}（{row['station_id']}）"))
    if row["parameter"]:
        facts.append(("因子", f"{parameter}（{row['parameter']}）"))
    if row["family"] in ("exceedance", "early_warning"):
        kind = (_json(row["details"]) or {}).get("window_kind", "")
        start = detail.get("window_start")
        end = detail.get("window_end")
        span = (
            f"{_local(datetime.fromisoformat(start), zone)} 至 {_local(datetime.fromisoformat(end), zone)}"
            if start and end
            else f"{_local(row['first_seen'], zone)} 起"
        )
        facts.append(("时段", f"{span}（{WINDOW_ZH.get(kind, kind)}）"))
        value = detail.get("value", row["value"])
        unit = row["unit"] or ""
        line = f"{_num(value)} {unit}，限值 {_num(row['limit_value'])} {unit}".strip()
        multiple = detail.get("exceedance_multiple", row["exceedance_multiple"])
        if multiple is not None:
            line += f"，超标 {multiple:.2f} 倍"
        facts.append(("监测值", line))
        basis = " ".join(str(clause.get(k)) for k in ("table", "item") if clause.get(k))
        facts.append(("依据", f"{row['standard'] or ''} {basis}".strip()))
    elif row["family"] == "kpi":
        facts += _kpi_facts(_json(row["details"]) or {})
    elif row["rule"] == "data_quality.offline":
        facts.append(("最后数据", f"{_local(row['first_seen'], zone)} 接收"))
    elif row["rule"] == "data_quality.clock_drift":
        facts.append(("情况", MEANING[row["rule"]]))
        drift = abs(float(detail.get("drift_seconds") or row["value"] or 0))
        ahead = detail.get("direction") == "ahead"
        facts.append(("时钟", f"数采仪时钟{'快' if ahead else '慢'}约 {_duration_zh(drift)}"))
    elif row["rule"] in MEANING:
        facts.append(("情况", MEANING[row["rule"]]))
        facts.append(("时段", f"{_local(row['first_seen'], zone)} 至 {_local(row['last_seen'], zone)}"))
        if row["rule"] == "data_quality.out_of_range" and detail.get("refused"):
            facts.append(("拒收", f"{detail['refused']} 条，例：{detail.get('example', '')}"))
    facts.append(("等级", SEVERITY_ZH.get(row["severity"], row["severity"])))
    if row["occurrences"] and row["occurrences"] > 1:
        facts.append(("累计", f"{row['occurrences']} 个时段"))
    if row["event_kind"] == "cleared":
        reason = detail.get("reason", "")
        facts.append(("解除原因", CLEAR_REASON_ZH.get(reason, reason)))
    if row["late"]:
        facts.append(("说明", "数据补传或修正后发现（非实时）"))
    facts.append(("详情", link))

    text = "\n".join([title, *(f"{k}：{v}" for k, v in facts)])
    markdown = "\n\n".join([f"### {title}", *(f"**{k}**：{v}" for k, v in facts)])
    document = {
        "notification_id": row["id"],
        "idempotency_key": f"parkwatch-notification-{row['id']}",
        "event": {
            "id": row["event_id"],
            "kind": row["event_kind"],
            "at": row["event_at"].isoformat(),
            "detail": detail,
        },
        "alert": {
            "id": row["alert_id"],
            "station_id": row["station_id"],
            "park_id": row["park_id"],
            "parameter": row["parameter"],
            "rule": row["rule"],
            "family": row["family"],
            "status": row["status"],
            "severity": row["severity"],
            "first_seen": row["first_seen"].isoformat(),
            "last_seen": row["last_seen"].isoformat(),
            "occurrences": row["occurrences"],
            "value": row["value"],
            "limit": row["limit_value"],
            "unit": row["unit"],
            "standard": row["standard"],
            "clause": clause,
            "late": row["late"],
            "url": link,
        },
        "message": {"title": title, "text": text},
    }
    fields = {
        "station": str(station)[:30],
        "parameter": parameter[:20],
        "value": _num(row["value"]),
        "limit": _num(row["limit_value"]),
        "time": _local(row["last_seen"], zone),
        "severity": SEVERITY_ZH.get(row["severity"], row["severity"]),
        "kind": TITLES.get(row["event_kind"], "{what}").format(what=what)[:20],
    }
    return Notice(title=title, text=text, markdown=markdown, document=document, fields=fields)


def test_notice(channel_id: str, public_url: str) -> Notice:
    """A notice that says it is a test, for `parkwatch notify test CHANNEL`."""
    title = "【parkwatch】通道测试"
    text = f"{title}\n通道：{channel_id}\n这是一条测试消息，收到即表示报警通知已配置正确。\n平台：{public_url}"
    document = {
        "notification_id": 0,
        "idempotency_key": f"parkwatch-test-{channel_id}",
        "event": {"id": 0, "kind": "test", "at": None, "detail": {}},
        "alert": {"id": 0, "park_id": "test", "status": "cleared", "station_id": None},
        "message": {"title": title, "text": text},
    }
    fields = {"kind": "通道测试", "station": "测试", "parameter": "测试", "value": "0", "limit": "0", "time": "—"}
    return Notice(title=title, text=text, markdown=text.replace("\n", "\n\n"), document=document, fields=fields)
