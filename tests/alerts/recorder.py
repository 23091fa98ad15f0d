"""A chat platform for alert tests: an HTTP recorder on a loopback socket and the adapter that posts to it.

Used until a platform's real SDK is under test (see test_slack_peer.py for that). The recorder keeps
every request it got, answers 503 while `down` and 429 with Retry-After while `rate_limited`, so the
delivery loop meets a real refused HTTP call rather than a patched method.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from kobot.chat import Capabilities, ChatAdapter
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage

PLATFORM = "recorder"


@dataclass
class ChatRecorder:
    """What the recorder received; `posts` and `edits` are the accepted requests, in order."""

    server: ThreadingHTTPServer
    posts: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    down: bool = False
    rate_limited: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def messages(self) -> list[dict[str, Any]]:
        """Every accepted send or edit, in arrival order."""
        with self.lock:
            return sorted(self.posts + self.edits, key=lambda m: m["seq"])

    def latest(self, message_id: str) -> dict[str, Any]:
        with self.lock:
            shown = [m for m in self.posts + self.edits if m["message_id"] == message_id]
        return max(shown, key=lambda m: m["seq"])


def start_recorder() -> ChatRecorder:
    recorder: ChatRecorder

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with recorder.lock:
                if recorder.down or recorder.rate_limited:
                    recorder.refused += 1
                    status = 503 if recorder.down else 429
                    self.send_response(status)
                    self.send_header("Retry-After", "1")
                    self.end_headers()
                    return
                seq = len(recorder.posts) + len(recorder.edits) + 1
                if self.path == "/send":
                    message_id = f"m{len(recorder.posts) + 1}"
                    recorder.posts.append({**body, "message_id": message_id, "seq": seq})
                else:
                    message_id = body["message_id"]
                    recorder.edits.append({**body, "seq": seq})
            answer = json.dumps({"ok": True, "message_id": message_id}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder = ChatRecorder(server=server)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return recorder


class RecorderAdapter(ChatAdapter):
    """Posts rendered text to the recorder; raises DeliveryError on a refusal as every adapter must."""

    platform = PLATFORM

    def __init__(self, *, url: str, max_message_bytes: int = 4096, edits: bool = True) -> None:
        self._url = url
        self._client: httpx.AsyncClient | None = None
        """Made on first use, in the loop that delivers (one per kobot server)."""
        self.capabilities = Capabilities(
            edits=edits, buttons=True, threads=False, markdown=False, max_message_bytes=max_message_bytes
        )

    async def _post(self, path: str, body: dict[str, Any]) -> str:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self._url, timeout=5)
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError("recorder unreachable") from exc
        if response.status_code != 200:
            retry = response.headers.get("retry-after")
            raise DeliveryError(
                f"recorder said {response.status_code}", retry_after=float(retry) if retry else None
            )
        return str(response.json()["message_id"])

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def _payload(message: OutgoingMessage) -> dict[str, Any]:
        return {
            "text": message.to_text(),
            "title": message.title,
            "tone": message.tone.value,
            "buttons": [b.model_dump(mode="json") for b in message.buttons],
        }

    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        body = {"conversation": conversation.conversation_id, **self._payload(message)}
        message_id = await self._post("/send", body)
        return MessageRef(
            platform=PLATFORM, conversation_id=conversation.conversation_id, message_id=message_id
        )

    async def update(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        if not self.capabilities.edits:
            return await self.send(
                Conversation(platform=PLATFORM, conversation_id=ref.conversation_id), message
            )
        body = {"conversation": ref.conversation_id, "message_id": ref.message_id, **self._payload(message)}
        await self._post("/update", body)
        return ref
