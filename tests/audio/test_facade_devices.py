"""The guide's face of 5.14 on a real PulseAudio server (tests/rig/pulse.py):
changeAudioInputDevice / changeAudioOutputDevice with onSuccess / onError, and
registerAudioDeviceChangeCallback told the new default's id when a speaker is plugged in
and made the default."""

from __future__ import annotations

import queue
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from tests.rig.pulse import PulseServer, pulse_server

from exotel_voice import ExotelWebClient
from exotel_voice.media import IceConfig, MediaConfig
from exotel_voice.sandbox import SandboxConfig
from exotel_voice.sandbox.threaded import SandboxThread


__all__ = ["pulse_server"]

pytestmark = pytest.mark.timeout(60)

MEDIA = MediaConfig(ice=IceConfig(host_addresses=["127.0.0.1"], gather_timeout=1.0))


@pytest.fixture
def client(pulse_server: PulseServer) -> Iterator[tuple[ExotelWebClient, SandboxThread]]:
    config = SandboxConfig(ws_port=0, wss_port=0, http_port=0,
                           users={"agent": secrets.token_urlsafe(12)})
    with SandboxThread(config) as sandbox:
        client = ExotelWebClient()
        try:
            assert client.initWebrtc(sandbox.sip_account_info("agent"), media=MEDIA) is True
            yield client, sandbox
        finally:
            client.close()


def outcome(change: Any, device_id: str) -> tuple[str, Any]:
    """``("ok", None)`` or ``("error", why)`` from a change...Device call's callbacks."""
    told: queue.Queue[tuple[str, Any]] = queue.Queue()
    future = change(device_id, lambda: told.put(("ok", None)),
                    lambda why: told.put(("error", why)))
    try:
        future.result(10)
    except Exception:
        pass
    return told.get(timeout=10)


def test_change_devices_before_and_after_register_with_on_success_and_on_error(
    client: tuple[ExotelWebClient, SandboxThread], pulse_server: PulseServer,
) -> None:
    web, _ = client
    # Before DoRegister: checked now, used by the phone when it is made.
    assert outcome(web.changeAudioInputDevice, "pulse:source:mic_2") == ("ok", None)
    kind, why = outcome(web.changeAudioOutputDevice, "Headset 9")
    assert kind == "error" and "no output device 'Headset 9'" in why
    assert web.DoRegister() is True and web.wait_for_registration(10)
    phone = web.phone
    assert phone is not None and phone.input_device is not None
    assert phone.input_device.id == "pulse:source:mic_2"
    # With the phone: applied to it.
    assert outcome(web.changeAudioOutputDevice, "spk_b") == ("ok", None)
    assert phone.output_device is not None and phone.output_device.id == "pulse:sink:spk_b"
    assert outcome(web.changeAudioInputDevice, "default") == ("ok", None)
    assert phone.input_device.id == "pulse:source:mic_1"
    kind, why = outcome(web.changeAudioInputDevice, "spk_a")  # a speaker, not a microphone
    assert kind == "error" and "no input device 'spk_a'" in why


def test_device_change_callbacks_get_the_new_default(
    client: tuple[ExotelWebClient, SandboxThread], pulse_server: PulseServer,
) -> None:
    web, _ = client
    inputs: queue.Queue[str] = queue.Queue()
    outputs: queue.Queue[str] = queue.Queue()
    changes: queue.Queue[dict[str, Any]] = queue.Queue()
    web.registerAudioDeviceChangeCallback(inputs.put, outputs.put, changes.put)
    assert web.DoRegister() is True and web.wait_for_registration(10)
    module = pulse_server.load_null_sink("usb_headset", "USB_Headset")
    assert "pulse:sink:usb_headset" in changes.get(timeout=10)["added"]
    pulse_server.set_default_sink("usb_headset")
    assert outputs.get(timeout=10) == "pulse:sink:usb_headset"
    pulse_server.run_pactl("set-default-source", "mic_2")
    assert inputs.get(timeout=10) == "pulse:source:mic_2"
    pulse_server.unload_module(module)
    assert outputs.get(timeout=10) != "pulse:sink:usb_headset"  # PulseAudio's next default
