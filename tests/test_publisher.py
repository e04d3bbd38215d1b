"""The lean QoS 1 publisher the gateway uses, against the real broker; and its wire encoding."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import mqttwire
from ingest.mqtt import MqttError
from ingest.publisher import LeanPublisher
from parkwatch.settings import MqttTarget, parse_mqtt_url
from tests.services import MQTT_HOST, MQTT_PORT, free_port


@given(st.integers(min_value=0, max_value=268_435_455), st.binary(max_size=64), st.integers(1, 7))
def test_split_packets_reads_back_what_was_written_in_any_chunks(length: int, tail: bytes, cut: int) -> None:
    """Remaining Length round-trips, and a packet split anywhere is read once complete."""
    body = b"x" * min(length, 300)
    wire = mqttwire.packet(0x40, body) + mqttwire.PINGREQ_PACKET
    buf = bytearray()
    got: list[tuple[int, bytes]] = []
    for i in range(0, len(wire), cut):
        buf += wire[i : i + cut]
        got += mqttwire.split_packets(buf)
    assert got == [(0x40, body), (0xC0, b"")]
    assert buf == bytearray()
    assert len(mqttwire.varint(length)) == (
        1 if length < 128 else 2 if length < 16384 else 3 if length < 2_097_152 else 4
    )


@pytest.mark.services
async def test_publish_is_acknowledged_and_delivered() -> None:
    """Messages published at QoS 1 come back acknowledged and reach a subscriber, in order."""
    topic = f"test-publisher/{uuid.uuid4().hex}"
    target = MqttTarget(host=MQTT_HOST, port=MQTT_PORT, tls=False)
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as sub:
        await sub.subscribe(topic, qos=1)
        pub = await LeanPublisher.connect(target, client_id=f"test-{uuid.uuid4().hex[:8]}")
        try:
            await asyncio.gather(*(pub.publish(topic, f"m{i}".encode()) for i in range(300)))
        finally:
            await pub.close()
        got = []
        async with asyncio.timeout(10):
            async for message in sub.messages:
                got.append(message.payload)
                if len(got) == 300:
                    break
    assert got == [f"m{i}".encode() for i in range(300)]


async def test_unreachable_broker_is_an_mqtt_error() -> None:
    """Connecting where no broker listens raises MqttError, not OSError."""
    with pytest.raises(MqttError, match="cannot connect"):
        await LeanPublisher.connect(parse_mqtt_url(f"mqtt://127.0.0.1:{free_port()}"), client_id="x")
