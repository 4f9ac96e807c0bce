"""pytest fixtures for the rig.  ``tests/interop/conftest.py`` re-exports them; another
conftest can do the same with ``from tests.rig.fixtures import *  # noqa: F403``.

Every fixture skips (never fails) when the loopback-only namespace is missing
(``EXOTEL_NETNS != "1"``) or a program is not installed.  Inside the namespace, a
start-up failure is an error that shows the daemon's log tail.

Session-scoped (started once, shared): ``rig_dir``, ``rig_certs``, ``rtpengine``,
``kamailio``, ``coturn``.  Function-scoped: ``fresh_kamailio`` (a private Kamailio that a
test may kill, restart or reconfigure), ``baresip_factory``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import missing_binaries, netns_skip_reason
from .baresip import BaresipPhone
from .certs import Certs, make_certs
from .coturn import Coturn
from .kamailio import DOMAIN, Kamailio
from .rtpengine import Rtpengine


__all__ = [
    "BaresipFactory",
    "baresip_factory",
    "coturn",
    "fresh_kamailio",
    "kamailio",
    "require_rig",
    "rig_certs",
    "rig_dir",
    "rtpengine",
]


def require_rig(*binaries: str) -> None:
    """Skip the calling test/fixture unless inside the netns with ``binaries`` installed."""
    reason = netns_skip_reason()
    if reason:
        pytest.skip(reason)
    missing = missing_binaries(*binaries)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (run scripts/setup-apt.sh)")


@pytest.fixture(scope="session")
def rig_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-session folder for configs, logs and recordings (kept after the run by pytest)."""
    require_rig()
    return tmp_path_factory.mktemp("rig")


@pytest.fixture(scope="session")
def rig_certs(rig_dir: Path) -> Certs:
    """Test CA + server certificate for 127.0.0.1, localhost and the SIP domain."""
    return make_certs(rig_dir / "certs", ("127.0.0.1", "localhost", DOMAIN))


@pytest.fixture(scope="session")
def rtpengine(rig_dir: Path) -> Iterator[Rtpengine]:
    """A running userspace rtpengine (session-wide)."""
    require_rig("rtpengine")
    engine = Rtpengine(rig_dir / "rtpengine")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def kamailio(rig_dir: Path, rig_certs: Certs, rtpengine: Rtpengine) -> Iterator[Kamailio]:
    """The shared Kamailio (session-wide).  Don't kill or restart it: use
    ``fresh_kamailio`` for that.  Use ``kamailio.new_user()`` for users no other test
    touches."""
    require_rig("kamailio")
    server = Kamailio(rig_dir / "kamailio", rtpengine_ng_port=rtpengine.ng_port, certs=rig_certs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_kamailio(
    tmp_path: Path, rig_certs: Certs, rtpengine: Rtpengine
) -> Iterator[Kamailio]:
    """A private Kamailio for one test, on its own ports; the test may ``kill()``,
    ``restart()`` or ``stop()``/``start()`` it.  Stopped afterwards."""
    require_rig("kamailio")
    server = Kamailio(tmp_path / "kamailio", rtpengine_ng_port=rtpengine.ng_port, certs=rig_certs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def coturn(rig_dir: Path) -> Iterator[Coturn]:
    """A running coturn (session-wide); ``coturn.info`` has URLs and credentials."""
    require_rig("turnserver")
    server = Coturn(rig_dir / "coturn")
    server.start()
    try:
        yield server
    finally:
        server.stop()


BaresipFactory = Callable[..., BaresipPhone]


@pytest.fixture
def baresip_factory(tmp_path: Path, kamailio: Kamailio) -> Iterator[BaresipFactory]:
    """Make baresip phones; all are stopped after the test.

    ``make(user=None, *, server=None, start=True, **kwargs) -> BaresipPhone``

    * ``user``: an existing user of the server, or None for a fresh one
      (``server.new_user("phone")``).
    * ``server``: a :class:`Kamailio` (default: the session ``kamailio``; pass
      ``fresh_kamailio`` to use that one).
    * ``start``: start (and, unless ``register=False``, register) before returning.
    * other keyword arguments go to :class:`~tests.rig.baresip.BaresipPhone`
      (``transport``, ``audio_file``, ``codecs``, ``answer_mode``, ``register``).
    """
    require_rig("baresip")
    phones: list[BaresipPhone] = []

    def make(
        user: str | None = None,
        *,
        server: Kamailio | None = None,
        start: bool = True,
        **kwargs: Any,
    ) -> BaresipPhone:
        srv = server or kamailio
        if user is None:
            user, password = srv.new_user("phone")
        else:
            password = srv.info.users[user]
        phone = BaresipPhone(
            tmp_path / f"baresip-{user}-{len(phones)}",
            user=user,
            password=password,
            server=srv.info,
            **kwargs,
        )
        phones.append(phone)
        if start:
            phone.start()
        return phone

    try:
        yield make
    finally:
        for phone in phones:
            phone.stop()
