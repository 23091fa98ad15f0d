"""A chat platform for alert tests: an HTTP recorder on a loopback socket and the adapter that posts to it.

Used by the alert tests where no platform SDK is under test (tests/alerts/test_slack_peer.py has that).
The recorder is a `LoopbackPeer` that keeps every message it accepted, answers 503 while `down` and
429 with Retry-After while `rate_limited`, so the delivery loop meets a real refused HTTP call rather
than a patched method.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from aiohttp import web

from kobot.chat import Capabilities, ChatAdapter
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage
from tests.peers.loopback import LoopbackPeer

PLATFORM = "recorder"


class ChatRecorder(LoopbackPeer):
    """What the recorder received; `posts` and `edits` are the accepted requests, in order."""

    thread_name = "chat-recorder"

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.refused = 0
        self.down = False
        self.rate_limited = False
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.origin

    def messages(self) -> list[dict[str, Any]]:
        """Every accepted send or edit, in arrival order."""
        with self.lock:
            return sorted(self.posts + self.edits, key=lambda m: m["seq"])

    def latest(self, message_id: str) -> dict[str, Any]:
        with self.lock:
            shown = [m for m in self.posts + self.edits if m["message_id"] == message_id]
        return max(shown, key=lambda m: m["seq"])

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        with self.lock:
            if self.down or self.rate_limited:
                self.refused += 1
                return web.Response(status=503 if self.down else 429, headers={"Retry-After": "1"})
            seq = len(self.posts) + len(self.edits) + 1
            if request.path == "/send":
                message_id = f"m{len(self.posts) + 1}"
                self.posts.append({**body, "message_id": message_id, "seq": seq})
            else:
                message_id = body["message_id"]
                self.edits.append({**body, "seq": seq})
        return web.json_response({"ok": True, "message_id": message_id})


def start_recorder() -> ChatRecorder:
    """A started recorder; the caller stops it."""
    return ChatRecorder().start()


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
