"""The REST emulation: Exotel's ``Calls/connect`` and call details, over plain HTTP/1.1.

Endpoints (``<sid>`` is ``SandboxConfig.account_sid``; a ``.json`` suffix asks for JSON,
otherwise the answer is XML, as on Exotel):

* ``POST /v1/Accounts/<sid>/Calls/connect[.json]`` - form fields ``From`` (a sandbox
  user, called first), ``To`` (a test number or another user), ``CallerId``; optional
  ``TimeOut`` (ring seconds per leg), ``TimeLimit`` (call seconds), ``StatusCallback``
  (an ``http://`` URL POSTed to, form-encoded, when the call ends: see
  :func:`status_callback_fields`), ``StatusCallbackEvents[0]=terminal`` and
  ``CustomField`` (echoed in that callback). Other parameters are accepted and ignored.
  200 with ``{"Call": {...}}`` / ``<TwilioResponse><Call>...</Call></TwilioResponse>``.
* ``GET /v1/Accounts/<sid>/Calls/<CallSid>[.json]`` - the same ``Call`` object, current.

Authentication is HTTP Basic with the API key and token. Errors use Exotel's
``RestException`` shape: ``{"RestException": {"Status": 401, "Message": "..."}}`` (401 bad
or missing credentials, 403 another account's SID, 400 a missing or unknown parameter,
404 an unknown call or path, 405 a wrong method).

A tiny HTTP server on asyncio streams: one request per connection (``Connection: close``),
bodies up to 64 KiB, form-encoded. No new dependency.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from .numbers import TEST_NUMBERS


if TYPE_CHECKING:
    from .server import Sandbox, SandboxCall

__all__ = ["RestServer", "call_resource", "http_request", "status_callback_fields"]

logger = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024
_MAX_HEAD = 16 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
}
_PATH = re.compile(r"^/v1/Accounts/([^/]+)/Calls/([^/]+?)(\.json)?/?$")


def _fmt(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    return str(value)


def call_resource(call: SandboxCall, account_sid: str, *, json_suffix: bool) -> dict[str, Any]:
    """The ``Call`` object of Exotel's v1 API for a sandbox call."""
    uri = f"/v1/Accounts/{account_sid}/Calls/{call.sid}" + (".json" if json_suffix else "")
    return {
        "Sid": call.sid,
        "ParentCallSid": None,
        "DateCreated": _fmt(call.date_created),
        "DateUpdated": _fmt(call.date_updated),
        "AccountSid": account_sid,
        "To": call.to,
        "From": call.from_,
        "PhoneNumberSid": call.caller_id,
        "Status": call.status,
        "StartTime": _fmt(call.start_time or call.date_created),
        "EndTime": _fmt(call.end_time),
        "Duration": call.duration,
        "Price": None,
        "Direction": call.direction,
        "AnsweredBy": None,
        "ForwardedFrom": None,
        "CallerName": None,
        "Uri": uri,
        "RecordingUrl": None,
    }


def status_callback_fields(call: SandboxCall, form: dict[str, str]) -> dict[str, str]:
    """What Exotel posts to ``StatusCallback`` when the call ends: ``CallSid``, ``Status``,
    ``RecordingUrl``, ``DateUpdated``; with ``StatusCallbackEvents`` asking for
    ``terminal``, also ``EventType``, the parties, the times, ``ConversationDuration``,
    ``Direction`` and ``CustomField``.

    Not emulated: the ``answered`` event, ``Legs``, JSON callbacks
    (``StatusCallbackContentType``).
    """
    fields = {
        "CallSid": call.sid,
        "Status": call.status,
        "RecordingUrl": "",
        "DateUpdated": _fmt(call.date_updated) or "",
    }
    events = [v for k, v in form.items() if k.startswith("StatusCallbackEvents")]
    if "terminal" in events:
        fields.update({
            "EventType": "terminal",
            "DateCreated": _fmt(call.date_created) or "",
            "To": call.to,
            "From": call.from_,
            "PhoneNumberSid": call.caller_id,
            "StartTime": _fmt(call.start_time or call.date_created) or "",
            "EndTime": _fmt(call.end_time) or "",
            "ConversationDuration": str(call.duration or 0),
            "Direction": call.direction,
            "CustomField": form.get("CustomField", ""),
        })
    return fields


def _xml(root: str, fields: dict[str, Any]) -> str:
    inner = "".join(
        f"<{k}>{escape(str(v))}</{k}>" if v is not None else f"<{k}/>" for k, v in fields.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<TwilioResponse><{root}>{inner}</{root}></TwilioResponse>\n"
    )


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RestServer:
    """Serves the REST emulation for one :class:`~.server.Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._handle, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        want_json = True
        try:
            try:
                method, target, headers, body = await asyncio.wait_for(_read(reader), 10.0)
                want_json = urlsplit(target).path.rstrip("/").endswith(".json")
                status, payload = self._route(method, target, headers, body)
            except _HttpError as exc:
                status = exc.status
                payload = {"Status": exc.status, "Message": exc.message}
                logger.info("REST %d: %s", exc.status, exc.message)
            except (
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ):
                status, payload = 400, {"Status": 400, "Message": "Malformed HTTP request"}
            root = "Call" if status == 200 else "RestException"
            if want_json:
                text = json.dumps({root: payload})
                content_type = "application/json"
            else:
                text = _xml(root, payload)
                content_type = "application/xml"
            data = text.encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {content_type}; charset=utf-8\r\n"
                f"Content-Length: {len(data)}\r\n"
                "Connection: close\r\n"
            )
            if status == 401:
                head += 'WWW-Authenticate: Basic realm="Exotel sandbox"\r\n'
            writer.write(head.encode() + b"\r\n" + data)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            logger.exception("! REST request failed")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    def _route(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        config = self.sandbox.config
        path = urlsplit(target).path
        m = _PATH.match(path)
        if m is None:
            raise _HttpError(404, f"No such resource: {path}")
        self._check_auth(headers.get("authorization"))
        sid, resource, suffix = unquote(m.group(1)), unquote(m.group(2)), m.group(3)
        if sid != config.account_sid:
            raise _HttpError(403, f"Your credentials do not give access to account {sid}")
        json_suffix = suffix is not None
        if resource == "connect":
            if method != "POST":
                raise _HttpError(405, "Calls/connect needs POST")
            call = self._connect(headers, body)
            return 200, call_resource(call, config.account_sid, json_suffix=json_suffix)
        if method != "GET":
            raise _HttpError(405, "Call details need GET")
        found = self.sandbox.find_call(resource)
        if found is None:
            raise _HttpError(404, f"Call {resource} not found")
        return 200, call_resource(found, config.account_sid, json_suffix=json_suffix)

    def _check_auth(self, value: str | None) -> None:
        config = self.sandbox.config
        if value is None or not value.lower().startswith("basic "):
            raise _HttpError(401, "Authentication is required (HTTP Basic: API key and token)")
        try:
            decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _HttpError(401, "Malformed Basic credentials") from None
        key, _, token = decoded.partition(":")
        ok_key = hmac.compare_digest(key.encode(), (config.api_key or "").encode())
        ok_token = hmac.compare_digest(token.encode(), (config.api_token or "").encode())
        if not (ok_key and ok_token):
            raise _HttpError(401, "Invalid API key or token")

    def _connect(self, headers: dict[str, str], body: bytes) -> SandboxCall:
        content_type = headers.get("content-type", "application/x-www-form-urlencoded")
        if "json" in content_type.lower():
            try:
                raw = json.loads(body or b"{}")
            except ValueError:
                raise _HttpError(400, "The body is not valid JSON") from None
            if not isinstance(raw, dict):
                raise _HttpError(400, "The body must be a JSON object")
            form = {str(k): str(v) for k, v in raw.items() if v is not None}
        else:
            try:
                parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                raise _HttpError(400, "The body is not UTF-8") from None
            form = {k: v[0] for k, v in parsed.items()}
        for name in ("From", "To", "CallerId"):
            if not form.get(name, "").strip():
                raise _HttpError(400, f"Missing parameter: {name} is mandatory")
        time_out = _number(form, "TimeOut")
        time_limit = _number(form, "TimeLimit")
        callback = form.get("StatusCallback", "").strip()
        if callback and urlsplit(callback).scheme != "http":
            raise _HttpError(400, "StatusCallback must be an http:// URL in the sandbox")
        try:
            call = self.sandbox.connect(
                form["From"], form["To"], form["CallerId"], time_out=time_out,
                time_limit=time_limit,
            )
        except ValueError as exc:
            users = ", ".join(sorted(self.sandbox.users))
            raise _HttpError(
                400, f"{exc} (users: {users}; test numbers: {', '.join(TEST_NUMBERS)})"
            ) from None
        if callback:
            self.sandbox.spawn(
                self._status_callback(call, callback, form), f"status callback {call.sid}"
            )
        return call

    async def _status_callback(self, call: SandboxCall, url: str, form: dict[str, str]) -> None:
        """POST the call's status to ``url`` once it has ended, form-encoded as Exotel does."""
        await call.wait_ended()
        fields = status_callback_fields(call, form)
        try:
            status, _ = await http_request("POST", url, form=fields)
        except (OSError, TimeoutError, ValueError) as exc:
            logger.warning("! status callback of %s to %s failed: %s", call.sid, url, exc)
            return
        logger.info("status callback of %s (%s) to %s: %d", call.sid, call.status, url, status)


def _number(form: dict[str, str], name: str) -> float | None:
    value = form.get(name, "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise _HttpError(400, f"{name} must be a number of seconds") from None
    if number <= 0:
        raise _HttpError(400, f"{name} must be positive")
    return number


async def _read(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEAD:
        raise ValueError("head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("bad header line")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or "0")
    if length < 0 or length > _MAX_BODY:
        raise _HttpError(413, "Request body too large")
    body = await reader.readexactly(length) if length else b""
    return parts[0].upper(), parts[1], headers, body


async def http_request(
    method: str,
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    form: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, str]:
    """A minimal HTTP/1.1 client for the REST emulation (plain ``http://`` only).

    Args:
        method: ``"GET"`` or ``"POST"``.
        url: the full URL.
        username: Basic-auth user (the API key).
        password: Basic-auth password (the API token).
        form: form fields, sent ``application/x-www-form-urlencoded``.
        timeout: seconds for the whole exchange.

    Returns:
        The status code and the body text.
    """
    from urllib.parse import urlencode

    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError("only http:// URLs are supported")
    body = urlencode(form).encode() if form is not None else b""
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    if form is not None:
        lines.append("Content-Type: application/x-www-form-urlencoded")
    lines.append(f"Content-Length: {len(body)}")
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, parts.port or 80)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
    head, _, text = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, text.decode("utf-8", "replace")
