"""Known answers from WeCom's own sample, so the crypto is not only checked against itself.

The peer encrypts with wechatpy's PrpCrypto and kobot decrypts with wechatpy's WeChatCrypto: a test
where one produces what the other consumes cannot catch a mistake both share. These values are from
WeCom's published callback sample: the `Sample.cpp`/`Sample.cs`/`Sample.java` of its WXBizMsgCrypt
library (the C# sample as kept in the public repository 2830499544/VipCard, Chain.Wechat/Tencent/Sample.cs;
the same values appear in the Java SDK tests of many projects, e.g. `WXBizMsgCryptTest.testVerifyUrl`):
token QDG6eK, EncodingAESKey jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C, receive id
wx5823bf96d3bd56c7; a URL check signed 5c45ff5e… that decrypts to 1616140317555161061, and a message
signed 477715d1… whose plaintext says "hello" from `mycreate`.
"""

from __future__ import annotations

import pytest
from redis import Redis
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.chat.wecom.callback import CallbackGuard, CallbackRefused
from bot.chat.wecom.inbound import TextIn, parse_app_callback
from bot.chat.wecom.state import WeComState
from tests.peers.wecom import sign

TOKEN = "QDG6eK"
ENCODING_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
RECEIVE_ID = "wx5823bf96d3bd56c7"

URL_SIGNATURE = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
URL_TIMESTAMP = "1409659589"
URL_NONCE = "263014780"
URL_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
URL_PLAIN = "1616140317555161061"

MSG_SIGNATURE = "477715d11cdb4164915debcba66cb864d751f3e6"
MSG_TIMESTAMP = "1409659813"
MSG_NONCE = "1372623149"
MSG_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg"
    "3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+k"
    "DZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6ti"
    "WSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p"
    "8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)


def guard(redis: Redis, *, now: float) -> CallbackGuard:
    crypto = WeChatCrypto(TOKEN, ENCODING_AES_KEY, RECEIVE_ID)
    return CallbackGuard(crypto=crypto, state=WeComState(redis=redis), endpoint="sample", clock=lambda: now)


def test_peer_signer_reproduces_wecoms_published_signatures() -> None:
    assert sign(TOKEN, URL_TIMESTAMP, URL_NONCE, URL_ECHOSTR) == URL_SIGNATURE
    assert sign(TOKEN, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT) == MSG_SIGNATURE


def test_peer_sample_url_check_decrypts_to_wecoms_published_echo(redis: Redis) -> None:
    checker = guard(redis, now=float(URL_TIMESTAMP))
    echo = checker.echo(
        signature=URL_SIGNATURE, timestamp=URL_TIMESTAMP, nonce=URL_NONCE, echostr=URL_ECHOSTR
    )
    assert echo == URL_PLAIN


def test_peer_sample_message_opens_and_parses_to_wecoms_published_text(redis: Redis) -> None:
    checker = guard(redis, now=float(MSG_TIMESTAMP) + 1)
    plain = checker.open(
        signature=MSG_SIGNATURE, timestamp=MSG_TIMESTAMP, nonce=MSG_NONCE, encrypted=MSG_ENCRYPT
    )
    assert "<FromUserName><![CDATA[mycreate]]></FromUserName>" in plain
    event = parse_app_callback(plain, agent_id=218)
    assert isinstance(event, TextIn)
    assert (event.user_id, event.text, event.message_id) == ("mycreate", "hello", "4561255354251345929")


def test_peer_sample_with_one_character_changed_is_refused(redis: Redis) -> None:
    checker = guard(redis, now=float(MSG_TIMESTAMP))
    tampered = MSG_ENCRYPT[:10] + ("A" if MSG_ENCRYPT[10] != "A" else "B") + MSG_ENCRYPT[11:]
    with pytest.raises(CallbackRefused) as refused:
        checker.open(signature=MSG_SIGNATURE, timestamp=MSG_TIMESTAMP, nonce=MSG_NONCE, encrypted=tampered)
    assert refused.value.status == 403
    other = WeChatCrypto(TOKEN, ENCODING_AES_KEY, "wwsomeoneelse")
    stranger = CallbackGuard(
        crypto=other, state=WeComState(redis=redis), endpoint="x", clock=lambda: 1409659813
    )
    with pytest.raises(CallbackRefused):  # the receive id inside the plaintext is checked too
        stranger.open(
            signature=MSG_SIGNATURE, timestamp=MSG_TIMESTAMP, nonce=MSG_NONCE, encrypted=MSG_ENCRYPT
        )
