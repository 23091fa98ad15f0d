"""The Slack adapter: Bolt's AsyncApp over HTTP (`POST /slack/events`) or Socket Mode, Web API for sending.

Inbound: the ack never waits for Redis, users.info or the dispatcher. The guard answers from memory,
and the work (the replay record in Redis, name lookup, translation, the sink) is only queued for a
bounded pool of workers; under overload the queue fills and new work is dropped and logged, never the
ack. A mention or a direct message over HTTP, nearly all of the traffic, is taken without Bolt: its one
parsed body is checked, queued and acked here, since Bolt's middleware chain and listener matching
would spend several times the rest of the ack on what kobot does not use. Slash commands, clicks, the
URL check and Socket Mode go through Bolt.
Outbound: chat.postMessage / chat.update with Block Kit over kept-alive connections shared by all calls;
429s are waited out for a bounded time inside the client, then surface as `DeliveryError(retry_after=...)`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger import get_bolt_app_logger
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.chat.registry import register_adapter
from bot.chat.slack import defaults
from bot.chat.slack.admission import Admitted, Refused, admit
from bot.chat.slack.guard import Delivery, RequestGuard, Verdict, click_key, event_key, seen_delivery
from bot.chat.slack.inbound import (
    InboundPayloadError,
    action_user,
    click_delivery_id,
    clicks_from_actions,
    command_user,
    event_user,
    message_from_command,
    message_from_event,
)
from bot.chat.slack.render import ACTIONS_BLOCK_ID, render
from bot.chat.slack.retry import retry_after_seconds, retry_handlers
from bot.chat.slack.tagged import LOOKUP_REFUSED_ERRORS, find_tagged_message, tag_metadata
from bot.chat.slack.users import UserDirectory
from bot.chat.slack.workspace import Workspace, describe_workspace
from bot.runtime import Runtime
from kobot.chat import Capabilities, ChatAdapter, InboundSink
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError, SettingsError
from kobot.http_body import read_capped
from kobot.messages import OutgoingMessage
from kobot.redis_clients import async_client
from kobot.settings_slack import SlackSettings
from kobot.store import ENCODING_ERRORS
from kobot.validation import has_surrogates

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

log = logging.getLogger(__name__)

SLASH_COMMAND = "/kobot"
"""The slash command the manifest declares."""

MESSAGE_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
"""chat.update answers after which kobot posts a fresh message instead of editing."""

_UNREACHABLE = (SlackClientError, aiohttp.ClientError, TimeoutError, OSError)

REPLAY_KEY_CONTEXT = "kobot_replay_key"
"""Where the guard's replay key rides in Bolt's context from the ack to the work that confirms it."""

TAKEN_EVENTS = frozenset({"app_mention", "message"})
"""Event types kobot acts on; over HTTP the adapter takes these itself, any other goes to Bolt."""

SELF_EVENTS_KEPT = frozenset({"member_joined_channel", "member_left_channel"})
"""kobot's own events that are not dropped as its own (as Bolt keeps them)."""


REFUSAL_ADVICE = {
    "not_in_channel": "kobot is not a member of that channel: invite it there with /invite @kobot",
    "is_archived": "that channel is archived: unarchive it or bind the cluster to another channel",
    "channel_not_found": "that channel does not exist or kobot cannot see it",
}
"""What to do about a refusal that no retry will change, said where the delivery error is shown."""


_Queued = tuple[str | None, str | None, Coroutine[Any, Any, None]]
"""(replay key, redelivery key, work): see SlackAdapter._once_anywhere."""


def _replay_key(context: Mapping[str, Any]) -> str | None:
    """The guard's replay key `handle_http` put in Bolt's context; none in Socket Mode."""
    key = context.get(REPLAY_KEY_CONTEXT)
    return key if isinstance(key, str) else None


def _event_delivery_key(body: Mapping[str, Any]) -> str | None:
    """The redelivery key of an event; none for an id that is not text Slack makes (the work refuses it)."""
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id and not has_surrogates(event_id):
        return event_key(event_id)
    return None


class _SharedClientApp(AsyncApp):
    """Bolt gives every request a Web API client of its own, so that a listener may change its token
    without touching the app's. kobot's listeners only queue work and never use or change that client,
    so every request shares the app's (its session and kept-alive connections included) instead of
    paying for a new one. A request bringing its own token (a workflow function's) still gets its own,
    since Bolt sets that token on the request's client."""

    @functools.cached_property
    def _context_logger(self) -> logging.Logger:
        # Bolt configures this logger again for every request; once is enough
        return get_bolt_app_logger(app_name=self.name, base_logger=self._base_logger)

    def _init_context(self, req: AsyncBoltRequest) -> None:
        if req.context.function_bot_access_token is not None:
            super()._init_context(req)
            return
        req.context["logger"] = self._context_logger
        req.context["token"] = self._token
        req.context["client"] = self._async_client
        req.context["listener_runner"] = self.listener_runner


class _MessageGone(Exception):
    """The message to edit no longer exists or cannot be edited."""


class _BlocksTooLong(Exception):
    """Slack refused the blocks' text as too long in total (msg_blocks_too_long)."""


class SlackAdapter(ChatAdapter):
    """Slack through Bolt. HTTP mode unless an app token is set, then Socket Mode."""

    platform = defaults.PLATFORM
    capabilities = Capabilities(
        edits=True,
        buttons=True,
        threads=True,
        markdown=True,
        max_message_bytes=defaults.TEXT_MAX_CHARS,
    )

    def __init__(self, *, settings: SlackSettings, redis_url: str) -> None:
        self._settings = settings
        # a send may wait out 429s this long, then make the call that is answered
        self.call_budget_seconds = settings.rate_limit_budget_seconds + defaults.API_TIMEOUT_SECONDS
        self._redis: Redis = async_client(
            redis_url, timeout=defaults.STORE_TIMEOUT_SECONDS, encoding_errors=ENCODING_ERRORS
        )
        token = settings.bot_token.get_secret_value()
        self.client = AsyncWebClient(
            token=token,
            base_url=settings.api_base_url,
            timeout=defaults.API_TIMEOUT_SECONDS,
            retry_handlers=retry_handlers(rate_limit_budget_seconds=settings.rate_limit_budget_seconds),
        )
        self._lookups = AsyncWebClient(
            token=token,
            base_url=settings.api_base_url,
            timeout=int(defaults.USER_LOOKUP_TIMEOUT_SECONDS),
            retry_handlers=retry_handlers(rate_limit_budget_seconds=None),
        )
        self._users = UserDirectory(client=self._lookups, redis=self._redis)
        self._connections: aiohttp.TCPConnector | None = None
        self._guard = RequestGuard(
            signing_secret=settings.signing_secret.get_secret_value(), redis=self._redis
        )
        self.app = _SharedClientApp(
            client=self.client,
            signing_secret=settings.signing_secret.get_secret_value(),
            # the listeners only queue work, so running them before the answer costs the ack nothing and
            # spares a task per request; what is acked is then always counted in inbound_in_flight
            process_before_response=True,
            # handle_http verifies every request before Bolt sees it (Socket Mode needs no signature)
            request_verification_enabled=False,
            logger=logging.getLogger("bot.chat.slack.bolt"),
        )
        self._socket: AsyncSocketModeHandler | None = None
        self._sink: InboundSink | None = None
        self._bot_user_id: str | None = None
        self._bot_id: str | None = None
        self._workspace: Workspace | None = None
        """Where the bot token belongs (auth.test at start); a request for anywhere else is dropped."""
        self._elsewhere_said: set[str] = set()
        # each item: the guard's replay key (None in Socket Mode), the redelivery key (event_id or click;
        # None when the request has none) and the work behind them
        self._queue: asyncio.Queue[_Queued] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0
        self._room = asyncio.Condition()
        self.allowed_workers = defaults.INBOUND_WORKERS
        """Workers that may handle work now: fewer while the event loop lags (see `_watch_lag`)."""
        self.shed = 0
        """Acked requests dropped because the queue was full (see defaults.INBOUND_QUEUE_MAX)."""
        self._register_listeners()

    @property
    def socket_mode(self) -> bool:
        return self._settings.app_token is not None

    async def start(self, sink: InboundSink) -> None:
        """Check the bot token (auth.test), learn the bot's user id, and open Socket Mode if configured."""
        self.sink = sink
        self._open_connections()
        try:
            auth = await self.client.auth_test()
        except SlackApiError as exc:
            error = _api_error(exc)
            raise SettingsError(
                f"setting KOBOT_SLACK__BOT_TOKEN: Slack refused the token ({error})"
            ) from None
        except _UNREACHABLE as exc:
            raise SettingsError(
                f"setting KOBOT_SLACK__API_BASE_URL: Slack's Web API did not answer ({type(exc).__name__})"
            ) from None
        self._bot_user_id = str(auth.get("user_id") or "") or None
        self._bot_id = str(auth.get("bot_id") or "") or None
        self._workspace = Workspace.of_auth_test(auth.data if isinstance(auth.data, dict) else {})
        if self._workspace.team_id is None and self._workspace.enterprise_id is None:
            log.warning("slack auth.test named no workspace: requests are not checked against one")
        self._start_workers()
        self._sink = sink
        if self.socket_mode:
            assert self._settings.app_token is not None
            # imported here: HTTP mode, the common case, does not pay its import at every start
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(
                self.app,
                app_token=self._settings.app_token.get_secret_value(),
                ping_interval=defaults.SOCKET_PING_SECONDS,
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack adapter receiving (%s mode)", "socket" if self.socket_mode else "http")

    @property
    def inbound_in_flight(self) -> int:
        """Acked events still on their way to the sink (queued or being handled)."""
        queued = self._queue.qsize() if self._queue is not None else 0
        return queued + self._busy

    async def stop(self) -> None:
        """Stop receiving, give acked events a moment to reach the sink, then let go of connections."""
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close_async()  # type: ignore[no-untyped-call]
        await self._stop_workers()
        self._sink = None
        await self._close_connections()
        await self._redis.aclose()

    def _open_connections(self) -> None:
        """One pool of kept-alive connections for every Web API call; each client keeps its own timeout,
        which slack_sdk applies only to sessions it makes itself."""
        if self._connections is not None:
            return
        self._connections = aiohttp.TCPConnector(limit=defaults.HTTP_CONNECTIONS_MAX)
        for client, seconds in (
            (self.client, defaults.API_TIMEOUT_SECONDS),
            (self._lookups, defaults.USER_LOOKUP_TIMEOUT_SECONDS),
        ):
            client.session = aiohttp.ClientSession(
                connector=self._connections,
                connector_owner=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            )

    async def _close_connections(self) -> None:
        for client in (self.client, self._lookups):
            session, client.session = client.session, None
            if session is not None:
                await session.close()
        connections, self._connections = self._connections, None
        if connections is not None:
            await connections.close()

    def _start_workers(self) -> None:
        if self._queue is not None:
            return
        self._queue = asyncio.Queue(maxsize=defaults.INBOUND_QUEUE_MAX)
        self.allowed_workers = defaults.INBOUND_WORKERS
        self._room = asyncio.Condition()  # made on the loop that runs the workers
        self._workers = [asyncio.create_task(self._work()) for _ in range(defaults.INBOUND_WORKERS)]
        self._workers.append(asyncio.create_task(self._watch_lag()))

    async def _stop_workers(self) -> None:
        queue, self._queue = self._queue, None
        if queue is None:
            return
        try:
            await asyncio.wait_for(queue.join(), timeout=defaults.STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("slack: %d acked events not handed on before stopping", queue.qsize() + self._busy)
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        while not queue.empty():
            queue.get_nowait()[2].close()

    async def _work(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            key, delivery_key, work = await queue.get()
            async with self._room:
                await self._room.wait_for(lambda: self._busy < self.allowed_workers)
                self._busy += 1
            try:
                await self._guarded(self._once_anywhere(key, delivery_key, work))
            finally:
                self._busy -= 1
                queue.task_done()
                async with self._room:
                    self._room.notify()

    async def _watch_lag(self) -> None:
        """Keep the event loop responsive for acks: when it answers a short sleep late, work is taking
        the loop, so half the workers pause (down to INBOUND_WORKERS_MIN); while it keeps time, one more
        may run again. Acks are cheap and never pass through here; work waits in the queue instead."""
        probe = defaults.LOOP_LAG_PROBE_SECONDS
        while True:
            started = time.monotonic()
            await asyncio.sleep(probe)
            lag = time.monotonic() - started - probe
            allowed = self.allowed_workers
            if lag > defaults.LOOP_LAG_HIGH_SECONDS:
                allowed = max(defaults.INBOUND_WORKERS_MIN, allowed // 2)
            elif lag < defaults.LOOP_LAG_LOW_SECONDS:
                allowed = min(defaults.INBOUND_WORKERS, allowed + 1)
            if allowed > self.allowed_workers:
                async with self._room:
                    self.allowed_workers = allowed
                    self._room.notify(allowed - self._busy)
            else:
                self.allowed_workers = allowed

    def router(self) -> APIRouter | None:
        if self.socket_mode:
            return None
        router = APIRouter()
        # a plain Starlette route: the ack path skips FastAPI's per-request dependency solving, which
        # costs more than the rest of the ack under load and gives this endpoint nothing
        router.add_route(defaults.EVENTS_PATH, self.handle_http, methods=["POST"], include_in_schema=False)
        return router

    async def handle_http(self, request: Request) -> Response:
        """Refuse oversized, forged, stale and replayed requests, then let Bolt answer."""
        body = await read_capped(request, limit=defaults.REQUEST_BODY_MAX_BYTES)
        if body is None:
            return JSONResponse({"error": "request body too large"}, status_code=413)
        answer = self._guard.check(body=body, headers=request.headers)
        verdict = answer.verdict
        if verdict is Verdict.FORGED:
            return JSONResponse({"error": "invalid or expired signature"}, status_code=401)
        retry = request.headers.get("x-slack-retry-num")
        if verdict is Verdict.REPLAYED and retry is not None:
            # Slack's first retry comes within the second: same timestamp, same body, so the same
            # signature. The original was accepted (a pair is stored only once verified), so this
            # copy is acked and dropped; a replay dressed up as a retry achieves nothing either.
            log.info("slack retry %s of a request already received; acked", retry[:8])
            return JSONResponse({"ok": True})
        if verdict is Verdict.REPLAYED:
            return JSONResponse({"error": "replayed request"}, status_code=401)
        if retry is not None:
            # Slack sent this again because an earlier ack was late or failed; the event_id check in
            # the background hands it on at most once, so the retry is acked like any request.
            log.info("slack retry %s (%s)", retry[:8], request.headers.get("x-slack-retry-reason", "")[:32])
        if self._sink is None:
            return JSONResponse({"error": "not ready"}, status_code=503)
        admitted = admit(body, headers=request.headers)
        if isinstance(admitted, Admitted) and self._sent_elsewhere(admitted.document):
            # acked, not answered 4xx: Slack retries a failed event and, past enough failures, turns off
            # the app's event subscriptions in every workspace, this one too
            return Response(status_code=200)
        if isinstance(admitted, Admitted) and self._took_event(admitted.document, key=answer.key):
            return Response(status_code=200)
        bolt_request = admitted.bolt_request() if isinstance(admitted, Admitted) else admitted
        if isinstance(bolt_request, Refused):
            log.warning("slack request refused: %s", bolt_request.reason)
            return JSONResponse({"error": bolt_request.reason}, status_code=400)
        bolt_request.context[REPLAY_KEY_CONTEXT] = answer.key
        bolt = await self.app.async_dispatch(bolt_request)
        if bolt.status >= 500:
            # kobot's listeners only schedule work, so a 5xx here is Bolt failing on the payload itself
            log.warning("slack request not understood by Bolt (HTTP %d)", bolt.status)
            return JSONResponse({"error": "the payload could not be handled"}, status_code=400)
        return to_starlette_response(bolt)

    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        return await self._post(conversation, message, metadata=None)

    async def send_tagged(
        self, conversation: Conversation, message: OutgoingMessage, *, tag: str
    ) -> MessageRef:
        """A post carrying `tag` in its message metadata, so `find_tagged` can find it (TaggedPosting)."""
        return await self._post(conversation, message, metadata=tag_metadata(tag))

    async def find_tagged(
        self, conversation: Conversation, *, tag: str, since: datetime
    ) -> MessageRef | None:
        """The post tagged `tag` since `since`; None also when kobot may not read the conversation."""
        try:
            return await find_tagged_message(
                self.client, conversation, tag=tag, since=since, platform=self.platform
            )
        except SlackApiError as exc:
            error = _api_error(exc)
            if error in LOOKUP_REFUSED_ERRORS:
                log.warning(
                    "slack: cannot look for an earlier post in %s (%s); posting again",
                    conversation.conversation_id,
                    error,
                )
                return None
            retry_after = (
                retry_after_seconds(exc.response.headers) if exc.response.status_code == 429 else None
            )
            raise DeliveryError(f"Slack refused the lookup ({error})", retry_after=retry_after) from None
        except _UNREACHABLE as exc:
            log.warning("slack unreachable: %s", type(exc).__name__)
            raise DeliveryError("Slack could not be reached") from None

    async def _post(
        self, conversation: Conversation, message: OutgoingMessage, *, metadata: dict[str, Any] | None
    ) -> MessageRef:
        async def post(payload: dict[str, Any]) -> AsyncSlackResponse:
            return await self._call(
                self.client.chat_postMessage(
                    channel=conversation.conversation_id,
                    thread_ts=conversation.thread_id,
                    metadata=metadata,
                    **payload,
                )
            )

        response = await _shorter_blocks_once(message, post)
        return MessageRef(
            platform=self.platform,
            conversation_id=str(response.get("channel") or conversation.conversation_id),
            message_id=str(response["ts"]),
            thread_id=conversation.thread_id,
        )

    async def update(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        async def edit(payload: dict[str, Any]) -> AsyncSlackResponse:
            return await self._call(
                self.client.chat_update(channel=ref.conversation_id, ts=ref.message_id, **payload)
            )

        try:
            await _shorter_blocks_once(message, edit)
        except _MessageGone:
            conversation = Conversation(
                platform=self.platform, conversation_id=ref.conversation_id, thread_id=ref.thread_id
            )
            return await self.send(conversation, message)
        return ref

    async def _call(self, call: Coroutine[Any, Any, AsyncSlackResponse]) -> AsyncSlackResponse:
        """Run a Web API call; a refusal becomes DeliveryError and never carries the token."""
        try:
            return await call
        except SlackApiError as exc:
            status = exc.response.status_code
            error = _api_error(exc)
            if status == 429:
                raise DeliveryError(
                    "Slack is rate limiting kobot",
                    retry_after=retry_after_seconds(exc.response.headers) or 1.0,
                ) from None
            if error in MESSAGE_GONE_ERRORS:
                raise _MessageGone(error) from None
            if error == "msg_blocks_too_long":
                raise _BlocksTooLong(error) from None
            log.warning("slack refused a message: %s", error)
            if error in REFUSAL_ADVICE:
                raise DeliveryError(f"Slack refused the message ({error}): {REFUSAL_ADVICE[error]}") from None
            raise DeliveryError(f"Slack refused the message ({error})") from None
        except _UNREACHABLE as exc:
            log.warning("slack unreachable: %s", type(exc).__name__)
            raise DeliveryError("Slack could not be reached") from None

    def _sent_elsewhere(self, document: Mapping[str, Any]) -> bool:
        """A verified request for another workspace the app is installed in (see `workspace`): not acted
        on, and said in the log once per workspace (a busy one would fill it)."""
        if self._workspace is None or not self._workspace.sent_elsewhere(document):
            return False
        where = describe_workspace(document)
        if where not in self._elsewhere_said and len(self._elsewhere_said) < defaults.ELSEWHERE_SAID_MAX:
            self._elsewhere_said.add(where)
            log.warning(
                "slack requests for %s are dropped: the bot token belongs to %r (said once)",
                where,
                self._workspace.team_id or self._workspace.enterprise_id,
            )
        return True

    def _took_event(self, document: Mapping[str, Any], *, key: str | None) -> bool:
        """Take a mention or a direct message without Bolt (queue it, or drop kobot's own and what kobot
        does not act on) and say so; False for anything else, which Bolt then answers."""
        if document.get("type") != "event_callback":
            return False
        event = document.get("event")
        if not isinstance(event, Mapping) or event.get("type") not in TAKEN_EVENTS:
            return False
        self._take_event(document, event, key=key)
        return True

    def _take_event(self, body: Mapping[str, Any], event: Mapping[str, Any], *, key: str | None) -> None:
        """Queue a mention or a person's direct message; kobot's own events, other messages and edits
        are acked and dropped."""
        if self._is_own(event):
            return
        if event.get("type") == "message" and (
            event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id")
        ):
            return
        self._spawn(self._deliver_event(body, event), key=key, delivery_key=_event_delivery_key(body))

    def _is_own(self, event: Mapping[str, Any]) -> bool:
        """An event kobot itself caused (its own message or mention), as Bolt's self-event check sees it."""
        if event.get("type") in SELF_EVENTS_KEPT:
            return False
        user, bot_id = event.get("user"), event.get("bot_id")
        return (user is not None and user == self._bot_user_id) or (
            bot_id is not None and bot_id == self._bot_id
        )

    def _register_listeners(self) -> None:
        """Bolt's listeners: every Socket Mode request, and HTTP requests the adapter does not take itself."""
        app = self.app

        @app.middleware
        async def only_this_workspace(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> Any:
            # Socket Mode's requests (HTTP ones are checked before Bolt): acked, so Slack does not
            # deliver them again, and dropped
            if self._sent_elsewhere(body):
                return BoltResponse(status=200, body="")
            await next()
            return None

        @app.event("app_mention")
        async def on_mention(body: dict[str, Any], event: dict[str, Any], context: Mapping[str, Any]) -> None:
            self._take_event(body, event, key=_replay_key(context))

        @app.event("message")
        async def on_message(body: dict[str, Any], event: dict[str, Any], context: Mapping[str, Any]) -> None:
            self._take_event(body, event, key=_replay_key(context))

        @app.command(SLASH_COMMAND)
        async def on_command(ack: Any, body: dict[str, Any], context: Mapping[str, Any]) -> None:
            await ack()
            self._spawn(self._deliver_command(body), key=_replay_key(context))

        @app.action(
            {"block_id": re.compile(rf"^{re.escape(ACTIONS_BLOCK_ID)}"), "action_id": re.compile(r".+")}
        )
        async def on_action(ack: Any, body: dict[str, Any], context: Mapping[str, Any]) -> None:
            await ack()
            delivery = click_delivery_id(body)
            self._spawn(
                self._deliver_clicks(body),
                key=_replay_key(context),
                delivery_key=None if delivery is None else click_key(delivery),
            )

    def _spawn(
        self, work: Coroutine[Any, Any, None], *, key: str | None, delivery_key: str | None = None
    ) -> None:
        """Queue the work behind the replay (`key`, none in Socket Mode) and redelivery records; when the
        queue is full, drop it (the ack stands)."""
        if self._queue is None:
            work.close()
            log.warning("slack adapter not started; acked request dropped")
            return
        try:
            self._queue.put_nowait((key, delivery_key, work))
        except asyncio.QueueFull:
            work.close()
            self.shed += 1
            log.warning(
                "slack: %d acked requests waiting, this one dropped (%d so far)",
                self._queue.qsize(),
                self.shed,
            )

    async def _once_anywhere(
        self, key: str | None, delivery_key: str | None, work: Coroutine[Any, Any, None]
    ) -> None:
        """`work`, unless another kobot behind the same balancer accepted this very request first or Slack
        delivered its event (or click) before: both records are written in one round trip."""
        try:
            if key is not None:
                delivery = await self._guard.first_delivery(key, delivery_key=delivery_key)
            elif delivery_key is not None and await seen_delivery(self._redis, delivery_key):
                delivery = Delivery.DELIVERED_AGAIN
            else:
                delivery = Delivery.FIRST
        except RedisError:
            # The store is down, so other kobots cannot be asked and a redelivery cannot be told from a
            # first delivery; this one's own replay check passed. The work runs and, needing the store
            # too, answers the person that kobot cannot act now, where dropping it would leave them with
            # silence.
            log.warning("slack request taken without the cross-process replay record: the store is down")
            delivery = Delivery.FIRST
        except BaseException:
            work.close()
            raise
        if delivery is Delivery.REPLAYED_ELSEWHERE:
            work.close()
            log.warning("slack request replayed to another kobot process; acked there, dropped here")
            return
        if delivery is Delivery.DELIVERED_AGAIN:
            work.close()
            log.info("slack event or click delivered again; ignored")
            return
        await work

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except InboundPayloadError as exc:
            log.warning("slack payload dropped: %s", exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("slack inbound event failed")

    async def _deliver_event(self, body: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        event_id = body.get("event_id")
        if isinstance(event_id, str) and has_surrogates(event_id):
            raise InboundPayloadError("event_id is not text Slack makes")
        sender = await self._users.sender(event_user(event))
        message = message_from_event(
            event, sender=sender, bot_user_id=self._bot_user_id, team_id=str(body.get("team_id", ""))
        )
        await self._require_sink().on_message(message)

    async def _deliver_command(self, body: Mapping[str, Any]) -> None:
        sender = await self._users.sender(command_user(body))
        await self._require_sink().on_message(message_from_command(body, sender=sender))

    async def _deliver_clicks(self, body: Mapping[str, Any]) -> None:
        sender = await self._users.sender(action_user(body))
        sink = self._require_sink()
        for click in clicks_from_actions(body, sender=sender):
            await sink.on_click(click)

    def _require_sink(self) -> InboundSink:
        if self._sink is None:
            raise InboundPayloadError("adapter stopped before the event was handed on")
        return self._sink


async def _shorter_blocks_once(
    message: OutgoingMessage, call: Callable[[dict[str, Any]], Awaitable[AsyncSlackResponse]]
) -> AsyncSlackResponse:
    """`call` with the rendered message; after msg_blocks_too_long, once more with half the text."""
    try:
        return await call(render(message))
    except _BlocksTooLong:
        log.warning("slack found the blocks too long; sending them shorter")
    try:
        return await call(render(message, blocks_text_budget=defaults.BLOCKS_TEXT_RETRY_CHARS))
    except _BlocksTooLong:
        raise DeliveryError("Slack refused the message as too long (msg_blocks_too_long)") from None


def _api_error(exc: SlackApiError) -> str:
    """Slack's error code, or the HTTP status when the answer was not Slack's JSON (an edge proxy)."""
    data = exc.response.data
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {exc.response.status_code}"


@register_adapter(defaults.PLATFORM)
def build(runtime: Runtime) -> SlackAdapter | None:
    """The Slack adapter when KOBOT_SLACK__* settings are present."""
    settings = runtime.settings.slack
    if settings is None:
        return None
    return SlackAdapter(settings=settings, redis_url=runtime.store.url)
