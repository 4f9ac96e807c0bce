"""Typed views of Exotel's v1 call objects: :class:`CallResource` and :class:`StatusCallback`.

Both are parsed from what Exotel sends, JSON (``{"Call": {...}}``), XML
(``<TwilioResponse><Call>...``) or a form (the status callback), into the same dataclasses.
Fields Exotel documents get typed attributes; every field as received stays in ``raw``.
Times are Exotel's ``YYYY-MM-DD HH:MM:SS`` as naive :class:`~datetime.datetime` (Exotel
gives no zone), amounts are :class:`~decimal.Decimal`, durations whole seconds.
"""

from __future__ import annotations

import datetime
import enum
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs


__all__ = ["CallLeg", "CallResource", "CallStatus", "StatusCallback", "parse_status_callback"]


class CallStatus(enum.StrEnum):
    """Exotel's call statuses (a status Exotel adds later stays a plain ``str``)."""

    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    FAILED = "failed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        """Whether the call is over."""
        return self not in (CallStatus.QUEUED, CallStatus.RINGING, CallStatus.IN_PROGRESS)


def _status(value: Any) -> str:
    text = _text(value) or ""
    try:
        return CallStatus(text)
    except ValueError:
        return text


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _time(value: Any) -> datetime.datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return int(float(text))
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class CallResource:
    """A call as ``Calls/connect`` and ``GET Calls/<Sid>`` return it.

    Attributes:
        sid: the call's Sid: what the web phone sees in ``X-Exotel-Callsid``.
        status: a :class:`CallStatus` (``queued``, ``ringing``, ``in-progress``,
            ``completed``, ``failed``, ``busy``, ``no-answer``, ``canceled``).
        from_: the number (or SIP user) called first.
        to: the number connected after ``from_``.
        direction: ``outbound-api`` for API calls, ``inbound``, ``outbound-dial``.
        phone_number_sid: the ExoPhone (``CallerId``).
        date_created, date_updated, start_time, end_time: Exotel's times.
        duration: seconds, once Exotel has computed it (minutes after the end, on Exotel).
        price: the call's price, once known.
        recording_url: the recording, when the call was recorded.
        raw: every field as received.
    """

    sid: str
    status: str
    from_: str | None = None
    to: str | None = None
    direction: str | None = None
    account_sid: str | None = None
    parent_call_sid: str | None = None
    phone_number_sid: str | None = None
    date_created: datetime.datetime | None = None
    date_updated: datetime.datetime | None = None
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    duration: int | None = None
    price: Decimal | None = None
    answered_by: str | None = None
    forwarded_from: str | None = None
    caller_name: str | None = None
    recording_url: str | None = None
    uri: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_fields(cls, raw: Mapping[str, Any]) -> CallResource:
        """Build from the ``Call`` object's fields (``Sid``, ``Status`` ...)."""
        return cls(
            sid=_text(raw.get("Sid")) or "",
            status=_status(raw.get("Status")),
            from_=_text(raw.get("From")),
            to=_text(raw.get("To")),
            direction=_text(raw.get("Direction")),
            account_sid=_text(raw.get("AccountSid")),
            parent_call_sid=_text(raw.get("ParentCallSid")),
            phone_number_sid=_text(raw.get("PhoneNumberSid")),
            date_created=_time(raw.get("DateCreated")),
            date_updated=_time(raw.get("DateUpdated")),
            start_time=_time(raw.get("StartTime")),
            end_time=_time(raw.get("EndTime")),
            duration=_int(raw.get("Duration")),
            price=_decimal(raw.get("Price")),
            answered_by=_text(raw.get("AnsweredBy")),
            forwarded_from=_text(raw.get("ForwardedFrom")),
            caller_name=_text(raw.get("CallerName")),
            recording_url=_text(raw.get("RecordingUrl")),
            uri=_text(raw.get("Uri")),
            raw=dict(raw),
        )

    @classmethod
    def from_json(cls, data: Any) -> CallResource:
        """Build from a parsed ``{"Call": {...}}`` body."""
        if not isinstance(data, dict) or not isinstance(data.get("Call"), dict):
            raise ValueError("the body has no Call object")
        return cls.from_fields(data["Call"])

    @classmethod
    def from_xml(cls, text: str | bytes) -> CallResource:
        """Build from a ``<TwilioResponse><Call>...</Call></TwilioResponse>`` body."""
        root = ET.fromstring(text)
        call = root if root.tag == "Call" else root.find("Call")
        if call is None:
            raise ValueError("the body has no Call element")
        return cls.from_fields({child.tag: child.text for child in call})


@dataclass(frozen=True)
class CallLeg:
    """One leg of a call in a status callback (``Legs``)."""

    status: str | None
    on_call_duration: int | None
    answered_by: str | None


@dataclass(frozen=True)
class StatusCallback:
    """What Exotel posts to a call's ``StatusCallback`` URL.

    ``call_sid``, ``status``, ``date_updated`` and ``recording_url`` always come; the rest
    only for a subscribed event (``StatusCallbackEvents``: ``terminal``, ``answered``).

    Attributes:
        call_sid: the call's Sid.
        status: a :class:`CallStatus` (``completed``, ``failed``, ``busy``, ``no-answer`` at
            the end).
        event_type: ``terminal`` or ``answered``, for a subscribed event.
        custom_field: the ``CustomField`` given to ``Calls/connect``.
        conversation_duration: seconds both parties were connected.
        legs: each leg's status and time on the call.
        raw: every field as received.
    """

    call_sid: str
    status: str
    date_updated: datetime.datetime | None = None
    recording_url: str | None = None
    event_type: str | None = None
    date_created: datetime.datetime | None = None
    from_: str | None = None
    to: str | None = None
    phone_number_sid: str | None = None
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    conversation_duration: int | None = None
    direction: str | None = None
    custom_field: str | None = None
    legs: tuple[CallLeg, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


_LEG_KEY = re.compile(r"^Legs\[(\d+)\]\[(\w+)\]$")


def parse_status_callback(
    data: Mapping[str, Any] | str | bytes, content_type: str | None = None
) -> StatusCallback:
    """Parse what Exotel posted to a ``StatusCallback`` URL.

    Args:
        data: the request's form as a mapping (``request.form``, ``parse_qs`` output: single
            values or lists), or the raw body (form-encoded, or JSON when Exotel was asked
            for ``StatusCallbackContentType=application/json``).
        content_type: the request's ``Content-Type``, if known (otherwise guessed).

    Raises:
        ValueError: no ``CallSid`` in it.
    """
    fields: dict[str, Any]
    if isinstance(data, bytes | str):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        is_json = "json" in (content_type or "").lower() or text.lstrip().startswith("{")
        if is_json:
            loaded = json.loads(text)
            if not isinstance(loaded, dict):
                raise ValueError("a status callback body must be a JSON object")
            fields = loaded
        else:
            fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    else:
        fields = {k: (v[0] if isinstance(v, list | tuple) and v else v) for k, v in data.items()}
    call_sid = _text(fields.get("CallSid"))
    if call_sid is None:
        raise ValueError("not a status callback: no CallSid")
    return StatusCallback(
        call_sid=call_sid,
        status=_status(fields.get("Status")),
        date_updated=_time(fields.get("DateUpdated")),
        recording_url=_text(fields.get("RecordingUrl")),
        event_type=_text(fields.get("EventType")),
        date_created=_time(fields.get("DateCreated")),
        from_=_text(fields.get("From")),
        to=_text(fields.get("To")),
        phone_number_sid=_text(fields.get("PhoneNumberSid")),
        start_time=_time(fields.get("StartTime")),
        end_time=_time(fields.get("EndTime")),
        conversation_duration=_int(fields.get("ConversationDuration")),
        direction=_text(fields.get("Direction")),
        custom_field=_text(fields.get("CustomField")),
        legs=_legs(fields),
        raw=fields,
    )


def _legs(fields: Mapping[str, Any]) -> tuple[CallLeg, ...]:
    items: list[Mapping[str, Any]] = []
    legs = fields.get("Legs")
    if isinstance(legs, str):
        try:
            legs = json.loads(legs)
        except ValueError:
            legs = None
    if isinstance(legs, list):
        items = [leg for leg in legs if isinstance(leg, dict)]
    else:  # a form: Legs[0][Status]=completed&Legs[0][OnCallDuration]=41 ...
        by_index: dict[int, dict[str, Any]] = {}
        for key, value in fields.items():
            m = _LEG_KEY.match(key)
            if m:
                by_index.setdefault(int(m.group(1)), {})[m.group(2)] = value
        items = [by_index[i] for i in sorted(by_index)]
    return tuple(
        CallLeg(
            status=_text(leg.get("Status")),
            on_call_duration=_int(leg.get("OnCallDuration")),
            answered_by=_text(leg.get("AnsweredBy")),
        )
        for leg in items
    )
