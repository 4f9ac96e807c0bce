"""The suite's skip marks for real networking, one per reason (docs/test-rig.md, "Which
tests need the namespace"); the reasons are computed in :mod:`tests.rig`.

``from tests.rig.marks import LOOPBACK_MEDIA`` and put it next to ``pytest.mark.media``.
"""

from __future__ import annotations

import pytest

from . import loopback_media_skip_reason, netns_root_skip_reason, netns_skip_reason


__all__ = ["LOOPBACK_MEDIA", "NEEDS_NETNS", "NEEDS_NETNS_ROOT"]

#: Real media between our own sessions (MediaSession, Phone, the sandbox, the CLI, the
#: docs' snippets) on 127.0.0.1: runs as any user, without the namespace, wherever the
#: gathering policy keeps every socket on 127.0.0.1 (:func:`loopback_media_skip_reason`).
LOOPBACK_MEDIA = pytest.mark.skipif(
    loopback_media_skip_reason() is not None, reason=str(loopback_media_skip_reason())
)

#: Starts a third-party daemon or a browser (Kamailio, rtpengine, baresip, coturn,
#: Chromium): only inside the loopback-only namespace (:func:`netns_skip_reason`).
NEEDS_NETNS = pytest.mark.skipif(netns_skip_reason() is not None,
                                 reason=str(netns_skip_reason()))

#: Changes the network (iptables rules, ``ss -K``, veth pairs): root inside the namespace,
#: so that only the namespace's network changes (:func:`netns_root_skip_reason`).
NEEDS_NETNS_ROOT = pytest.mark.skipif(netns_root_skip_reason() is not None,
                                      reason=str(netns_root_skip_reason()))
