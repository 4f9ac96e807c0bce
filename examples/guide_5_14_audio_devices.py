"""5.14 Audio Device Selection: changeAudioInputDevice(), changeAudioOutputDevice(),
registerAudioDeviceChangeCallback().

Lists the audio devices, registers the device-change callbacks, picks the input and output
devices before registering, answers the first incoming call, checks the far end's audio,
then mutes, switches the microphone and the speaker during the call, and hangs up. Exits 0
if every change reported onSuccess, the call stayed connected, mute stayed on across the
microphone change (Exotel's SDK unmutes there), and (with --expect-tone-hz: the given tone)
audio was heard before and after the switch.

Needs the [audio] extra (``pip install 'exotel-voice[audio]'``) and audio devices;
``exotel-voice devices`` lists their ids (a name or ``default`` works too).

Against the sandbox (see _common.py): ``EXOTEL_SANDBOX_PASSWORD=pw exotel-voice sandbox``, then
``EXOTEL_SECRET=pw python guide_5_14_audio_devices.py --input default --output default`` and
ring it with the sandbox's click-to-call to ``echo`` (``curl ... -d From=agent -d To=echo
...``): the far end sends back what the microphone hears.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from _common import fail, heard, parse

from exotel_voice import ExotelWebClient
from exotel_voice.audio import AudioBackendMissing, list_devices


exWebClient = ExotelWebClient()  # noqa: N816
connected = threading.Event()
done = threading.Event()
sessionStates: list[str] = []  # noqa: N816
changes: list[str] = []


def audioInputDeviceCallback(deviceId: str) -> None:  # noqa: N802, N803
    print(f"demo:audioInputDeviceCallback device changed to {deviceId}", flush=True)


def audioOutputDeviceCallback(deviceId: str) -> None:  # noqa: N802, N803
    print(f"demo:audioOutputDeviceCallback device changed to {deviceId}", flush=True)


def change(kind: str, deviceId: str) -> bool:  # noqa: N803
    """The guide's changeAudio{Input,Output}Device with its two callbacks; True on success."""
    outcome = threading.Event()

    def onSuccess() -> None:  # noqa: N802
        print(f"{kind} device changed successfully to {deviceId}", flush=True)
        changes.append(kind)
        outcome.set()

    def onError(error: str) -> None:  # noqa: N802
        print(f"Failed to change {kind} device: {error}", flush=True)
        outcome.set()

    method = (exWebClient.changeAudioInputDevice if kind == "input"
              else exWebClient.changeAudioOutputDevice)
    before = len(changes)
    method(deviceId, onSuccess, onError)
    outcome.wait(10)
    return len(changes) > before


def RegisterEventCallBack(state: str, phone: str) -> None:  # noqa: N802
    print(f"RegisterEventCallBack: {state} {phone}", flush=True)


def CallListenerCallback(callObj, eventType: str, phone: str) -> None:  # noqa: N802, N803, ANN001
    print(f"CallListenerCallback: {eventType} {phone}", flush=True)
    if eventType == "incoming":
        exWebClient.getCall().Answer()
    elif eventType == "connected":
        connected.set()
    elif eventType in ("callEnded", "terminated"):
        done.set()


def SessionCallback(state: str, phone: str) -> None:  # noqa: N802
    print(f"SessionCallback: {state} {phone}", flush=True)
    sessionStates.append(state)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args, sipAccountInfo, options = parse(__doc__, argv, [  # noqa: N806
        ("--input", {"default": "default", "help": "the microphone (id or name)"}),
        ("--output", {"default": "default", "help": "the speaker (id or name)"}),
        ("--switch-input", {"help": "the microphone to switch to during the call"}),
        ("--switch-output", {"help": "the speaker to switch to during the call"}),
        ("--after-switch", {"type": float, "default": 2.0,
                            "help": "seconds the call goes on after the switch (default 2)"}),
    ])
    try:
        for device in list_devices():
            kinds = "/".join(k for k, n in (("input", device.input_channels),
                                            ("output", device.output_channels)) if n)
            print(f"device: {device.id} ({device.name}, {kinds})", flush=True)
    except AudioBackendMissing as exc:
        return fail(str(exc))
    exWebClient.initWebrtc(sipAccountInfo, RegisterEventCallBack, CallListenerCallback,
                           SessionCallback, **options)
    exWebClient.registerAudioDeviceChangeCallback(audioInputDeviceCallback,
                                                  audioOutputDeviceCallback)
    # Before the call: the devices the call will use.
    if not (change("input", args.input) and change("output", args.output)):
        exWebClient.close()
        return fail("the devices could not be chosen")
    exWebClient.DoRegister()
    if not connected.wait(args.timeout):
        exWebClient.close()
        return fail(f"no call was answered within {args.timeout:.0f} s")
    problem = heard(exWebClient.getCall(), args.expect_tone_hz)
    # During the call: mute, then change the microphone and the speaker.
    exWebClient.getCall().Mute().result(5)
    switched = True
    if args.switch_input:
        switched = change("input", args.switch_input) and switched
    muted_after = exWebClient.getCall().call.muted  # type: ignore[union-attr]
    print(f"muted after the input change: {muted_after}", flush=True)
    exWebClient.getCall().UnMute().result(5)
    if args.switch_output:
        switched = change("output", args.switch_output) and switched
    print("switched", flush=True)
    time.sleep(args.after_switch)
    problem = problem or heard(exWebClient.getCall(), args.expect_tone_hz)
    state = exWebClient.getCall().callState
    print(f"callState: {state}", flush=True)
    exWebClient.getCall().Hangup()
    ok = done.wait(args.timeout)
    exWebClient.close()
    if not switched:
        return fail("a device change during the call failed")
    if not muted_after:
        return fail("the call was unmuted by the input device change")
    if state != "connected":
        return fail(f"the call was {state} after the device changes, not connected")
    if problem:
        return fail(problem)
    return 0 if ok else fail("the call did not end")


if __name__ == "__main__":
    sys.exit(main())
