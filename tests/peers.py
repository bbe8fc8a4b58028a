"""Real protocol peers on 127.0.0.1 for notifications: an SMTP server (aiosmtpd) and an HTTP
server standing in for Twilio's REST API, reached through the twilio client's own HTTP layer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        return payload.decode() if isinstance(payload, bytes) else str(payload)


@dataclass
class MailServer:
    """An SMTP server that keeps what it receives. `hold_s` delays the reply to DATA (the
    mail is already received): a sender killed meanwhile never learns it was delivered."""

    port: int = field(default_factory=free_port)
    received: list[ReceivedMail] = field(default_factory=list)
    hold_s: float = 0.0
    _controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            ReceivedMail(
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                message=message_from_bytes(envelope.original_content or envelope.content),
            )
        )
        if self.hold_s:
            await asyncio.sleep(self.hold_s)
        return "250 Message accepted for delivery"

    def start(self) -> MailServer:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class TwilioServer:
    """Twilio's Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json, basic auth."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "twilio-test-token"
    fail_with: int | None = None  # answer with this HTTP status instead of sending
    # Delay the answer to a message it keeps (already kept): a sender that stops waiting
    # never learns it was sent.
    hold_s: float = 0.0
    messages: list[dict[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> TwilioServer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stall

            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                expected = (
                    "Basic "
                    + base64.b64encode(f"{peer.account_sid}:{peer.auth_token}".encode()).decode()
                )
                if self.headers.get("Authorization") != expected:
                    self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return
                if self.path != f"/2010-04-01/Accounts/{peer.account_sid}/Messages.json":
                    self._send(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                if peer.fail_with:
                    self._send(
                        peer.fail_with,
                        {"code": 30001, "message": "Queue overflow", "status": peer.fail_with},
                    )
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                peer.messages.append(form)
                time.sleep(peer.hold_s)
                self._send(
                    201,
                    {
                        "sid": "SM" + uuid.uuid4().hex,
                        "account_sid": peer.account_sid,
                        "to": form.get("To"),
                        "from": form.get("From"),
                        "body": form.get("Body"),
                        "status": "queued",
                    },
                )

            def _send(self, status: int, document: dict[str, Any]) -> None:
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class TcpProxy:
    """A TCP relay on 127.0.0.1 to a real server (PostgreSQL): `cut()` drops every open
    connection and refuses new ones, as a lost server or network would; `restore()` ends it."""

    target_port: int
    target_host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    _down: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def cut(self) -> None:
        self._down.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        self._down.clear()

    def stop(self) -> None:
        self.cut()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection((self.target_host, self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
