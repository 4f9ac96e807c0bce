"""The package's public names: what ``__all__`` lists is there, and importing the
package (or its sans-I/O core) does not load the asyncio API until a name of it is used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import exotel_voice
import exotel_voice.client


def test_every_name_in_all_is_importable_and_all_is_sorted() -> None:
    for name in exotel_voice.__all__:
        assert getattr(exotel_voice, name) is not None, name
    assert exotel_voice.__all__ == sorted(exotel_voice.__all__)
    assert set(exotel_voice.__all__) <= set(dir(exotel_voice))


def test_the_asyncio_api_is_re_exported_whole() -> None:
    missing = set(exotel_voice.client.__all__) - set(exotel_voice.__all__)
    assert not missing, f"exotel_voice.client names missing at the top level: {sorted(missing)}"
    for name in exotel_voice.client.__all__:
        assert getattr(exotel_voice, name) is getattr(exotel_voice.client, name)


def test_the_field_recovery_names_are_exported_where_their_kind_is() -> None:
    import exotel_voice.media
    import exotel_voice.media.netwatch

    # Events of the asyncio API: in exotel_voice.client and at the top level.
    for name in ("CallRecovered", "IceRestarted", "IceRestarting", "MediaStateChanged",
                 "MediaWarningCleared", "NoMediaWarning", "Reconnected", "Reconnecting"):
        assert name in exotel_voice.client.__all__, name
        assert name in exotel_voice.__all__, name
    # What the events carry and the configuration: in exotel_voice.media and at the top.
    for name in ("DtlsState", "IceState", "LivenessConfig"):
        assert name in exotel_voice.media.__all__, name
        assert getattr(exotel_voice, name) is getattr(exotel_voice.media, name), name
    # The watcher a Phone runs stays in exotel_voice.media, as MediaSession does.
    assert exotel_voice.media.AddressWatcher is exotel_voice.media.netwatch.AddressWatcher
    assert "AddressWatcher" in exotel_voice.media.__all__
    assert "AddressWatcher" not in exotel_voice.__all__
    for module in (exotel_voice.client, exotel_voice.media):
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchName"):
        exotel_voice.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_the_core_imports_without_the_asyncio_api() -> None:
    code = (
        "import sys, exotel_voice, exotel_voice.sip.useragent\n"
        "heavy = ('exotel_voice.client', 'aiortc', 'websockets')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "from exotel_voice import CallState, PhoneStatus, RegistrationState, CallEnded\n"
        "assert 'exotel_voice.client' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_import_gives_what_an_application_needs() -> None:
    import exotel_voice.config
    import exotel_voice.media
    from exotel_voice import (  # the issue's import, with the classes' real names
        AccountConfig,
        Call,
        CallEvent,
        DtmfReceived,
        Phone,
        ToneSource,
        WavFileSink,
        WavFileSource,
    )

    assert (Phone, Call, CallEvent, DtmfReceived) == (
        exotel_voice.client.Phone, exotel_voice.client.Call, exotel_voice.client.CallEvent,
        exotel_voice.client.DtmfReceived,
    )
    assert AccountConfig is exotel_voice.config.AccountConfig
    assert (ToneSource, WavFileSource, WavFileSink) == (
        exotel_voice.media.ToneSource, exotel_voice.media.WavFileSource,
        exotel_voice.media.WavFileSink,
    )
    # Every configuration class, and the media classes an application builds itself.
    for name in exotel_voice.config.__all__:
        assert getattr(exotel_voice, name) is getattr(exotel_voice.config, name), name
    for name in ("AudioSink", "AudioSource", "DeviceSink", "DeviceSource", "FrameSink",
                 "FrameSource", "IceConfig", "IceServer", "LevelMeter", "MediaConfig",
                 "SilenceSource", "ToneSource", "WavFileSink", "WavFileSource"):
        assert name in exotel_voice.__all__, name
        assert getattr(exotel_voice, name) is getattr(exotel_voice.media, name), name


def test_the_media_names_load_aiortc_only_when_used() -> None:
    code = (
        "import sys, exotel_voice\n"
        "from exotel_voice import AccountConfig, AudioSourceError, MediaError\n"
        "assert 'aiortc' not in sys.modules\n"
        "from exotel_voice import ToneSource\n"
        "assert 'aiortc' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
