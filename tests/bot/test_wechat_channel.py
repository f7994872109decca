"""Protocol tests of the WeChat official-account channel (bot/channels/wechat.py), in the Rasa environment.

Each test starts, on free local ports, a real Sanic app with the channel registered by Rasa's own
``rasa.core.channels.channel.register`` and a fake of WeChat's API (access token + customer-service messages,
recording what it receives), and talks to them over real HTTP. The bot behind the channel is a small scripted
"agent" whose ``handle_message`` records the ``UserMessage`` and answers through the message's output channel
with ``send_response`` — the call Rasa's processor makes — so no trained model is needed.

Run: ``cd /work/main && PYTHONPATH=. <rasa env>/bin/python -m pytest tests/bot/test_wechat_channel.py -q``
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional
from urllib.parse import urlencode

import pytest

pytest.importorskip("rasa", reason="Rasa environment only (Python 3.10)")

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from rasa.core.channels.channel import UserMessage, register  # noqa: E402
from rasa.core.run import create_http_input_channels  # noqa: E402
from rasa.shared.exceptions import RasaException  # noqa: E402
from sanic import Sanic  # noqa: E402

from bot.channels import wechat  # noqa: E402
from bot.channels.wechat import (  # noqa: E402
    NON_TEXT_REPLY,
    OPTIONS_HINT,
    WeChatInput,
    parse_wechat_xml,
    wechat_signature,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "jsjbTestToken2026"
APPID = "wx0123456789abcdef"
SECRET = "test-secret-0123456789abcdef"
ACCOUNT = "gh_0123456789ab"
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxY01"
OTHER_OPENID = "oZyXwVuTsRqPoNmLkJiHgFeDcB02"
REDIS_URL = os.environ.get("JSJB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Several apps are started in one process: Sanic 21.12 supports that only in its test mode (otherwise the second
# app's start-up fails while re-optimising Sanic's already optimised HTTP functions).
Sanic.test_mode = True


# ----------------------------------------------------------------------------------------------------------------
# helpers: signing, XML, the fake WeChat API, the scripted bot, the running channel
# ----------------------------------------------------------------------------------------------------------------


def signed(token: str = TOKEN, timestamp: Optional[str] = None, nonce: str = "183729", **extra: str) -> Dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    return {"signature": wechat_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


def text_xml(content: str, msg_id: str, openid: str = OPENID) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode("utf-8")


def event_xml(event: str, openid: str = OPENID) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    ).encode("utf-8")


def new_msg_id() -> str:
    return str(24000000000000000 + uuid.uuid4().int % 10**15)


def parse_reply(body: str) -> Dict[str, str]:
    root = ET.fromstring(body)  # our own reply: trusted
    assert root.tag == "xml"
    return {child.tag: child.text or "" for child in root}


class FakeWeChatApi:
    """``GET /cgi-bin/token`` and ``POST /cgi-bin/message/custom/send`` of api.weixin.qq.com, recording calls."""

    def __init__(self) -> None:
        self.token_requests: List[Dict[str, str]] = []
        self.sent: List[Dict[str, Any]] = []
        self.rejected_calls: List[str] = []
        self.issued = 0
        self.revoked: set = set()
        self.url = ""
        self._runner: Optional[web.AppRunner] = None

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests.append(dict(request.query))
        if (request.query.get("grant_type") != "client_credential" or request.query.get("appid") != APPID
                or request.query.get("secret") != SECRET):
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        self.issued += 1
        return web.json_response({"access_token": f"ACCESS-{self.issued}", "expires_in": 7200})

    async def _send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        raw = await request.read()
        valid = re.fullmatch(r"ACCESS-(\d+)", token) and int(token.split("-")[1]) <= self.issued
        if not valid or token in self.revoked:
            self.rejected_calls.append(token)
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        self.sent.append({"access_token": token, "json": await request.json(), "raw": raw,
                          "content_type": request.headers.get("Content-Type", "")})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def texts(self) -> List[str]:
        return [item["json"]["text"]["content"] for item in self.sent if item["json"].get("msgtype") == "text"]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} customer-service messages, got {len(self.sent)}")
            await asyncio.sleep(0.05)


Script = Callable[[UserMessage], Awaitable[None]]


class ScriptedBot:
    """Stands in for Rasa's Agent: ``register`` calls ``app.ctx.agent.handle_message(message)``."""

    def __init__(self, script: Optional[Script] = None) -> None:
        self.received: List[UserMessage] = []
        self.script = script or echo()

    async def handle_message(self, message: UserMessage) -> None:
        self.received.append(message)
        await self.script(message)


def echo(delay: float = 0.0) -> Script:
    async def script(message: UserMessage) -> None:
        if delay:
            await asyncio.sleep(delay)
        await message.output_channel.send_response(message.sender_id, {"text": f"您反映的是：{message.text}"})

    return script


class Stack:
    def __init__(self, channel: WeChatInput, api: FakeWeChatApi, bot: ScriptedBot, url: str) -> None:
        self.channel, self.api, self.bot, self.url = channel, api, bot, url
        self.session = aiohttp.ClientSession()

    async def post(self, body: bytes, params: Optional[Dict[str, str]] = None) -> "Answer":
        params = signed() if params is None else params
        started = time.monotonic()
        async with self.session.post(f"{self.url}/webhooks/wechat/webhook?{urlencode(params)}", data=body,
                                     headers={"Content-Type": "text/xml"}) as resp:
            return Answer(resp.status, await resp.text(), time.monotonic() - started, resp.headers.get("Content-Type"))

    async def get(self, params: Dict[str, str]) -> "Answer":
        started = time.monotonic()
        async with self.session.get(f"{self.url}/webhooks/wechat/webhook?{urlencode(params)}") as resp:
            return Answer(resp.status, await resp.text(), time.monotonic() - started, resp.headers.get("Content-Type"))


class Answer:
    def __init__(self, status: int, body: str, elapsed: float, content_type: Optional[str]) -> None:
        self.status, self.body, self.elapsed, self.content_type = status, body, elapsed, content_type or ""

    @property
    def reply(self) -> Dict[str, str]:
        assert self.status == 200, (self.status, self.body)
        assert self.content_type.startswith("application/xml"), self.content_type
        return parse_reply(self.body)


@asynccontextmanager
async def running(bot: Any = None, api: Optional[FakeWeChatApi] = None, **settings: Any):
    """A Sanic app with the channel (registered the way Rasa registers channels) and the fake WeChat API.

    ``bot`` is what ``register`` hands each message to (``app.ctx.agent.handle_message``): a ScriptedBot or a
    real Rasa ``Agent``.
    """
    bot = bot or ScriptedBot()
    own_api = api is None
    api = api or FakeWeChatApi()
    if own_api:
        await api.start()
    channel = WeChatInput(token=TOKEN, appid=APPID, secret=SECRET, api_base=api.url,
                          **{"reply_timeout": 2.0, **settings})
    app = Sanic(f"wechat_test_{uuid.uuid4().hex}")
    app.ctx.agent = bot
    register([channel], app, "/webhooks/")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    await server.startup()  # the socket already listens; this finalizes the routes
    await server.before_start()
    await server.after_start()
    stack = Stack(channel, api, bot, f"http://127.0.0.1:{port}")
    try:
        yield stack
    finally:
        await stack.session.close()
        await asyncio.gather(*list(channel._tasks), return_exceptions=True)
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
        if own_api:
            await api.stop()


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------------
# URL verification
# ----------------------------------------------------------------------------------------------------------------


def test_url_verification_echoes_echostr_when_the_signature_is_valid():
    async def scenario():
        async with running() as stack:
            answer = await stack.get(signed(echostr="5838479218127813673"))
            assert (answer.status, answer.body) == (200, "5838479218127813673")

    run(scenario())


def test_url_verification_is_refused_for_wrong_missing_or_stale_signatures():
    async def scenario():
        async with running() as stack:
            wrong_token = await stack.get(signed(token="not-our-token", echostr="123"))
            tampered = signed(echostr="123")
            tampered["nonce"] = "999999"
            missing = await stack.get({"echostr": "123", "timestamp": str(int(time.time())), "nonce": "1"})
            stale = await stack.get(signed(timestamp=str(int(time.time()) - 3600), echostr="123"))
            for answer in (wrong_token, await stack.get(tampered), missing, stale):
                assert answer.status == 403
                assert "123" not in answer.body

    run(scenario())


def test_signature_is_sha1_of_sorted_token_timestamp_nonce():
    import hashlib

    expected = hashlib.sha1("".join(sorted(["tok", "1700000000", "42"])).encode()).hexdigest()
    assert wechat_signature("tok", "1700000000", "42") == expected


# ----------------------------------------------------------------------------------------------------------------
# text messages and passive replies
# ----------------------------------------------------------------------------------------------------------------


def test_signed_text_message_gets_a_passive_xml_reply_with_swapped_user_names():
    async def scenario():
        async with running() as stack:
            msg_id = new_msg_id()
            answer = await stack.post(text_xml("小区门口路灯坏了", msg_id), signed(openid=OPENID))
            reply = answer.reply
            assert reply["ToUserName"] == OPENID
            assert reply["FromUserName"] == ACCOUNT
            assert reply["MsgType"] == "text"
            assert reply["Content"] == "您反映的是：小区门口路灯坏了"
            assert abs(int(reply["CreateTime"]) - time.time()) < 10
            (message,) = stack.bot.received
            assert message.sender_id == OPENID
            assert message.input_channel == "wechat"
            assert message.text == "小区门口路灯坏了"
            assert message.message_id == msg_id
            assert message.metadata["wechat"]["account"] == ACCOUNT
            assert message.output_channel.name() == "wechat"  # responses with `channel: wechat` apply
            assert stack.api.sent == [] and stack.api.token_requests == []

    run(scenario())


def test_several_bot_messages_are_joined_in_one_passive_reply():
    async def script(message: UserMessage) -> None:
        await message.output_channel.send_response(message.sender_id, {"text": "已收到您的诉求。"})
        await message.output_channel.send_response(message.sender_id, {"text": "工单号：20261122-000123"})

    async def scenario():
        async with running(ScriptedBot(script)) as stack:
            reply = (await stack.post(text_xml("噪音扰民", new_msg_id()))).reply
            assert reply["Content"] == "已收到您的诉求。\n\n工单号：20261122-000123"

    run(scenario())


def test_forged_or_missing_signature_is_refused_and_nothing_reaches_the_bot():
    async def scenario():
        async with running() as stack:
            body = text_xml("伪造的消息", new_msg_id())
            forged = await stack.post(body, signed(token="guessed-token"))
            no_signature = await stack.post(body, {"timestamp": str(int(time.time())), "nonce": "1"})
            nothing = await stack.post(body, {})
            replayed = await stack.post(body, signed(timestamp=str(int(time.time()) - 3600)))
            assert [a.status for a in (forged, no_signature, nothing, replayed)] == [403, 403, 403, 403]
            assert stack.bot.received == []

    run(scenario())


@pytest.mark.parametrize("body", [
    pytest.param(b"<xml><ToUserName>gh</ToUserName><FromUserName>o", id="truncated"),
    pytest.param(b"not xml at all", id="not-xml"),
    pytest.param(b"", id="empty"),
    pytest.param(b"<message><MsgType>text</MsgType></message>", id="wrong-root"),
    pytest.param(b"<xml><MsgType>text</MsgType><Content>hi</Content></xml>", id="no-user-names"),
    pytest.param(b"<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><MsgType>text</MsgType>"
                 b"<Content>&undefined;</Content></xml>", id="undefined-entity"),
    pytest.param(b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;'
                 b'&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                 b"<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><MsgType>text</MsgType>"
                 b"<Content>&lol3;</Content><MsgId>1</MsgId></xml>", id="billion-laughs"),
    pytest.param(b'<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd"> %remote;]><xml/>',
                 id="parameter-entity"),
])
def test_malformed_xml_and_doctype_are_rejected_with_400(body: bytes):
    async def scenario():
        async with running() as stack:
            answer = await stack.post(body)
            assert answer.status == 400
            assert stack.bot.received == []

    run(scenario())


def test_external_entity_is_never_resolved(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    body = (f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file://{secret}">]>'
            f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{OPENID}</FromUserName>"
            f"<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>").encode()

    async def scenario():
        async with running() as stack:
            answer = await stack.post(body)
            assert answer.status == 400
            assert "TOP-SECRET" not in answer.body
            assert stack.bot.received == []

    run(scenario())
    with pytest.raises(wechat.WeChatXMLError):
        parse_wechat_xml(body)


def test_oversized_body_is_refused():
    async def scenario():
        async with running() as stack:
            answer = await stack.post(text_xml("很长" * 40000, new_msg_id()))
            assert answer.status == 413
            assert stack.bot.received == []

    run(scenario())


# ----------------------------------------------------------------------------------------------------------------
# de-duplication of WeChat's retries
# ----------------------------------------------------------------------------------------------------------------


def test_retries_with_the_same_msgid_are_processed_once_and_get_the_same_reply():
    async def scenario():
        async with running(ScriptedBot(echo(delay=0.6)), reply_timeout=3.0) as stack:
            msg_id = new_msg_id()
            body = text_xml("楼上漏水", msg_id)
            first = asyncio.ensure_future(stack.post(body))
            await asyncio.sleep(0.2)  # the retry arrives while the first delivery is being processed
            retry = await stack.post(body)
            first = await first
            late_retry = await stack.post(body)  # after processing: answered from the cache
            assert len(stack.bot.received) == 1
            assert first.reply["Content"] == "您反映的是：楼上漏水"
            assert retry.body == first.body
            assert late_retry.body == first.body
            assert late_retry.elapsed < 0.5
            # a different MsgId with the same text is a new message
            await stack.post(text_xml("楼上漏水", new_msg_id()))
            assert len(stack.bot.received) == 2

    run(scenario())


def test_processing_survives_wechat_hanging_up_and_the_retry_gets_the_reply():
    async def scenario():
        async with running(ScriptedBot(echo(delay=0.8)), reply_timeout=3.0) as stack:
            msg_id = new_msg_id()
            body = text_xml("电梯停运", msg_id)
            with pytest.raises(asyncio.TimeoutError):  # the client gives up; Sanic cancels that request's handler
                await asyncio.wait_for(stack.post(body), timeout=0.3)
            await asyncio.sleep(1.0)
            retry = await stack.post(body)
            assert retry.reply["Content"] == "您反映的是：电梯停运"
            assert retry.elapsed < 0.5
            assert len(stack.bot.received) == 1

    run(scenario())


# ----------------------------------------------------------------------------------------------------------------
# slow bot: "success" at the deadline, then the customer-service message API
# ----------------------------------------------------------------------------------------------------------------


def test_slow_bot_gets_success_at_the_deadline_and_its_messages_follow_through_the_api():
    async def script(message: UserMessage) -> None:
        await message.output_channel.send_response(message.sender_id, {"text": "正在为您查询，请稍候。"})
        await asyncio.sleep(1.2)
        await message.output_channel.send_response(message.sender_id, {"text": "查询结果：您的工单已受理。"})

    async def scenario():
        async with running(ScriptedBot(script), reply_timeout=0.4) as stack:
            msg_id = new_msg_id()
            answer = await stack.post(text_xml("查询工单进度", msg_id))
            assert (answer.status, answer.body) == (200, "success")
            assert 0.35 <= answer.elapsed < 1.0
            retry = await stack.post(text_xml("查询工单进度", msg_id))
            assert retry.body == "success"
            await stack.api.wait_for(2)
            assert stack.api.texts() == ["正在为您查询，请稍候。", "查询结果：您的工单已受理。"]
            for sent in stack.api.sent:
                assert sent["json"]["touser"] == OPENID
                assert sent["json"]["msgtype"] == "text"
                assert sent["access_token"] == "ACCESS-1"
                assert sent["content_type"].startswith("application/json")
                assert "正在为您查询".encode("utf-8") in sent["raw"] or "查询结果".encode("utf-8") in sent["raw"]
            assert len(stack.api.token_requests) == 1  # fetched once, then reused
            assert stack.api.token_requests[0] == {"grant_type": "client_credential", "appid": APPID,
                                                   "secret": SECRET}
            assert len(stack.bot.received) == 1

            # a second slow message reuses the cached token
            await stack.post(text_xml("再查一次", new_msg_id()))
            await stack.api.wait_for(4)
            assert len(stack.api.token_requests) == 1
            assert {s["access_token"] for s in stack.api.sent} == {"ACCESS-1"}

    run(scenario())


def test_rejected_access_token_is_replaced_once():
    async def scenario():
        async with running() as stack:
            output = stack.channel.get_output_channel()
            await output.send_text_message(OPENID, "第一条")
            stack.api.revoked.add("ACCESS-1")  # e.g. the token was refreshed elsewhere
            await output.send_text_message(OPENID, "第二条")
            assert stack.api.texts() == ["第一条", "第二条"]
            assert [s["access_token"] for s in stack.api.sent] == ["ACCESS-1", "ACCESS-2"]
            assert stack.api.rejected_calls == ["ACCESS-1"]
            assert len(stack.api.token_requests) == 2

    run(scenario())


def test_wrong_app_secret_is_reported_without_leaking_it():
    async def scenario():
        api = FakeWeChatApi()
        await api.start()
        try:
            channel = WeChatInput(token=TOKEN, appid=APPID, secret="wrong-secret-value", api_base=api.url)
            with pytest.raises(wechat.WeChatApiError) as error:
                await channel.get_output_channel().send_text_message(OPENID, "你好")
            assert error.value.errcode == 40013
            assert "wrong-secret-value" not in str(error.value)
            assert api.sent == []
        finally:
            await api.stop()

    run(scenario())


def test_reply_too_long_for_one_passive_reply_continues_through_the_api():
    async def script(message: UserMessage) -> None:
        for part in ("第一段：诉求已登记。", "第二段：将转派至街道办事处。", "第三段：请保持电话畅通。"):
            await message.output_channel.send_response(message.sender_id, {"text": part})

    async def scenario():
        async with running(ScriptedBot(script), max_reply_bytes=80) as stack:  # 74 bytes fit, 112 do not
            reply = (await stack.post(text_xml("道路积水", new_msg_id()))).reply
            assert reply["Content"] == "第一段：诉求已登记。\n\n第二段：将转派至街道办事处。"
            await stack.api.wait_for(1)
            assert stack.api.texts() == ["第三段：请保持电话畅通。"]

    run(scenario())


def test_bot_failure_gets_an_apology_instead_of_silence():
    async def script(message: UserMessage) -> None:
        raise RuntimeError("action server down")

    async def scenario():
        async with running(ScriptedBot(script)) as stack:
            reply = (await stack.post(text_xml("你好", new_msg_id()))).reply
            assert reply["Content"] == wechat.ERROR_REPLY

    run(scenario())


# ----------------------------------------------------------------------------------------------------------------
# buttons as numbered options
# ----------------------------------------------------------------------------------------------------------------


def _choose_type(message: UserMessage):
    async def ask():
        await message.output_channel.send_response(message.sender_id, {
            "text": "请问您的诉求属于哪一类？",
            "buttons": [{"title": "投诉举报", "payload": "/complaint"}, {"title": "咨询", "payload": "/inquiry"}],
        })

    async def confirm():
        await message.output_channel.send_response(message.sender_id, {"text": f"收到：{message.text}"})

    return ask() if message.text == "我要反映问题" else confirm()


def test_buttons_become_numbered_options_and_a_number_answer_sends_the_payload():
    async def scenario():
        async with running(ScriptedBot(_choose_type)) as stack:
            reply = (await stack.post(text_xml("我要反映问题", new_msg_id()))).reply
            assert reply["Content"] == f"请问您的诉求属于哪一类？\n1. 投诉举报\n2. 咨询\n{OPTIONS_HINT}"
            await stack.post(text_xml("２", new_msg_id()))  # full-width digit, as Chinese keyboards type it
            assert stack.bot.received[-1].text == "/inquiry"
            # the options are used once: the next "2" is ordinary text
            await stack.post(text_xml("2", new_msg_id()))
            assert stack.bot.received[-1].text == "2"
            # options are per citizen
            await stack.post(text_xml("我要反映问题", new_msg_id()))
            await stack.post(text_xml("1", new_msg_id(), openid=OTHER_OPENID))
            assert stack.bot.received[-1].text == "1"
            await stack.post(text_xml("投诉举报", new_msg_id()))  # the exact title works too
            assert stack.bot.received[-1].text == "/complaint"

    run(scenario())


def test_the_bots_own_quick_replies_render_as_numbered_options_with_intent_payloads():
    """Every `buttons:` response of bot/domain.yml reaches a WeChat citizen as numbered titles; each number stands
    for an intent payload the domain knows."""
    import yaml

    domain = yaml.safe_load((Path(__file__).resolve().parents[2] / "bot" / "domain.yml").read_text(encoding="utf-8"))
    intents = set(domain["intents"])
    with_buttons = {name: variants[0] for name, variants in domain["responses"].items() if variants[0].get("buttons")}
    assert {"utter_greet", "utter_ask_contact_phone", "utter_ask_callback_satisfaction"} <= set(with_buttons)
    for name, response in with_buttons.items():
        rendered = wechat.render_message(response)
        assert rendered.options and len(rendered.options) == len(response["buttons"]), name
        for index, (option, button) in enumerate(zip(rendered.options, response["buttons"]), start=1):
            assert f"{index}. {button['title']}" in rendered.texts[0], name
            assert option["payload"].startswith("/") and option["payload"][1:] in intents, (name, option)


# ----------------------------------------------------------------------------------------------------------------
# events and non-text messages
# ----------------------------------------------------------------------------------------------------------------


def test_subscribe_event_gets_the_welcome_text_and_other_events_success():
    async def scenario():
        async with running(welcome_text="欢迎关注！请描述您的诉求。") as stack:
            reply = (await stack.post(event_xml("subscribe"))).reply
            assert reply["Content"] == "欢迎关注！请描述您的诉求。"
            assert (reply["ToUserName"], reply["FromUserName"]) == (OPENID, ACCOUNT)
            unsubscribe = await stack.post(event_xml("unsubscribe"))
            assert (unsubscribe.status, unsubscribe.body) == (200, "success")
            assert stack.bot.received == []
        async with running() as stack:
            assert "欢迎关注接诉即办助手" in (await stack.post(event_xml("subscribe"))).reply["Content"]

    run(scenario())


@pytest.mark.parametrize("msg_type,extra", [
    ("image", "<PicUrl><![CDATA[http://mmbiz.qpic.cn/x.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>"),
    ("voice", "<MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[amr]]></Format>"),
    ("video", "<MediaId><![CDATA[m3]]></MediaId>"),
    ("location", "<Location_X>39.9</Location_X><Location_Y>116.4</Location_Y><Label><![CDATA[北京]]></Label>"),
])
def test_non_text_messages_get_the_text_only_notice(msg_type: str, extra: str):
    body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{extra}"
            f"<MsgId>{new_msg_id()}</MsgId></xml>").encode()

    async def scenario():
        async with running() as stack:
            reply = (await stack.post(body)).reply
            assert reply["Content"] == NON_TEXT_REPLY == "目前只支持文字消息，请用文字描述您的诉求。"
            assert reply["ToUserName"] == OPENID
            assert stack.bot.received == []

    run(scenario())


def test_sticker_placeholder_text_gets_the_text_only_notice():
    async def scenario():
        async with running() as stack:
            reply = (await stack.post(text_xml("【收到不支持的消息类型，暂无法显示】", new_msg_id()))).reply
            assert reply["Content"] == NON_TEXT_REPLY
            assert stack.bot.received == []

    run(scenario())


def test_voice_with_a_speech_recognition_transcript_is_handled_as_text():
    body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[voice]]></MsgType>"
            f"<MediaId><![CDATA[m]]></MediaId><Format><![CDATA[amr]]></Format>"
            f"<Recognition><![CDATA[垃圾没人清运]]></Recognition><MsgId>{new_msg_id()}</MsgId></xml>").encode()

    async def scenario():
        async with running() as stack:
            assert (await stack.post(body)).reply["Content"] == "您反映的是：垃圾没人清运"

    run(scenario())


def test_encrypted_mode_message_is_acknowledged_but_not_processed():
    body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
            "<Encrypt><![CDATA[bG9yZW0gaXBzdW0=]]></Encrypt></xml>").encode()

    async def scenario():
        async with running() as stack:
            answer = await stack.post(body, signed(encrypt_type="aes"))
            assert (answer.status, answer.body) == (200, "success")
            assert stack.bot.received == []

    run(scenario())


# ----------------------------------------------------------------------------------------------------------------
# privacy of logs
# ----------------------------------------------------------------------------------------------------------------


def test_logs_never_contain_phone_or_id_numbers_in_clear(caplog: pytest.LogCaptureFixture):
    text = "我的电话13812345678，身份证11010519491231002X，家门口井盖丢了"

    async def script(message: UserMessage) -> None:
        raise RuntimeError(f"failed on {message.text}")

    async def scenario():
        async with running(ScriptedBot(script)) as stack:
            await stack.post(text_xml(text, new_msg_id()))

    with caplog.at_level(logging.DEBUG, logger="bot.channels.wechat"):
        run(scenario())
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name == "bot.channels.wechat")
    assert "138****5678" in logged  # the text was logged (debug), masked
    assert "13812345678" not in logged
    assert "19491231" not in logged
    assert OPENID not in logged and SECRET not in logged


# ----------------------------------------------------------------------------------------------------------------
# Redis-backed de-duplication (several Rasa instances)
# ----------------------------------------------------------------------------------------------------------------


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


async def _drop_keys(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.close(close_connection_pool=True)


@pytest.mark.skipif(not _redis_reachable(), reason=f"Redis unreachable at {REDIS_URL}")
def test_redis_dedup_across_two_instances_processes_a_message_once():
    prefix = f"jsjb-test-wechat-{uuid.uuid4().hex[:12]}"

    async def scenario():
        api = FakeWeChatApi()
        await api.start()
        settings = {"redis_url": REDIS_URL, "redis_key_prefix": prefix, "reply_timeout": 3.0}
        try:
            async with running(ScriptedBot(echo(delay=0.5)), api, **settings) as one, \
                    running(ScriptedBot(echo(delay=0.5)), api, **settings) as two:
                msg_id = new_msg_id()
                body = text_xml("井盖丢失", msg_id)
                first = asyncio.ensure_future(one.post(body))
                await asyncio.sleep(0.15)
                retry_elsewhere = await two.post(body)  # WeChat's retry lands on the other instance
                first = await first
                assert len(one.bot.received) + len(two.bot.received) == 1
                assert first.reply["Content"] == "您反映的是：井盖丢失"
                assert retry_elsewhere.body == first.body  # polled from Redis
                late = await two.post(body)
                assert late.body == first.body and len(two.bot.received) == 0

                # numbered options shown by one instance are understood by the other
                one.bot.script = two.bot.script = _choose_type
                await one.post(text_xml("我要反映问题", new_msg_id()))
                await two.post(text_xml("1", new_msg_id()))
                assert two.bot.received[-1].text == "/complaint"

                # late replies from both instances use one access token, fetched once and shared through Redis
                one.bot.script = two.bot.script = echo(delay=4.0)
                one.channel.reply_timeout = two.channel.reply_timeout = 0.3
                assert (await one.post(text_xml("第一件事", new_msg_id()))).body == "success"
                assert (await two.post(text_xml("第二件事", new_msg_id()))).body == "success"
                await api.wait_for(2)
                assert sorted(api.texts()) == ["您反映的是：第一件事", "您反映的是：第二件事"]
                assert len(api.token_requests) == 1
                assert {sent["access_token"] for sent in api.sent} == {"ACCESS-1"}
        finally:
            await _drop_keys(prefix)
            await api.stop()

    run(scenario())


def test_unreachable_redis_fails_open():
    async def scenario():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # nothing listens there once the probe is closed
        async with running(redis_url=f"redis://127.0.0.1:{port}/0") as stack:
            reply = (await stack.post(text_xml("路灯不亮", new_msg_id()))).reply
            assert reply["Content"] == "您反映的是：路灯不亮"

    run(scenario())


# ----------------------------------------------------------------------------------------------------------------
# configuration through bot/credentials.yml
# ----------------------------------------------------------------------------------------------------------------


def _documented_entry() -> str:
    """The commented-out WeChat entry of bot/credentials.yml, uncommented."""
    text = (ROOT / "bot" / "credentials.yml").read_text(encoding="utf-8")
    block = re.search(r"# >>> wechat\n(.*?)# <<< wechat", text, re.S)
    assert block, "bot/credentials.yml lacks the documented WeChat entry"
    return "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in block.group(1).splitlines())


def test_documented_credentials_entry_creates_the_channel_through_rasa(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    credentials = tmp_path / "credentials.yml"
    credentials.write_text(_documented_entry(), encoding="utf-8")
    monkeypatch.setenv("WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("WECHAT_APP_ID", APPID)
    monkeypatch.setenv("WECHAT_APP_SECRET", SECRET)
    (channel,) = create_http_input_channels(None, str(credentials))
    assert isinstance(channel, WeChatInput)
    assert channel.token == TOKEN and channel.api.appid == APPID
    assert channel.url_prefix() == "wechat"

    monkeypatch.delenv("WECHAT_APP_SECRET")
    with pytest.raises(RasaException):  # why the entry is commented out by default
        create_http_input_channels(None, str(credentials))


def test_project_credentials_still_load_without_wechat_variables(monkeypatch: pytest.MonkeyPatch):
    for name in ("WECHAT_TOKEN", "WECHAT_APP_ID", "WECHAT_APP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    channels = create_http_input_channels(None, str(ROOT / "bot" / "credentials.yml"))
    assert channels and not any(isinstance(channel, WeChatInput) for channel in channels)


def test_missing_credentials_are_refused():
    with pytest.raises(RasaException):
        WeChatInput.from_credentials({"token": TOKEN, "appid": APPID})
    with pytest.raises(RasaException):
        WeChatInput.from_credentials(None)
    with pytest.raises(RasaException):
        WeChatInput.from_credentials({"token": TOKEN, "appid": APPID, "secret": SECRET, "reply_timeout": 6})


# ----------------------------------------------------------------------------------------------------------------
# the channel in front of a real Rasa agent (a tiny model trained on the spot: keyword NLU + rules)
# ----------------------------------------------------------------------------------------------------------------

TINY_DOMAIN = """\
version: "3.1"
intents: [greet, complaint]
responses:
  utter_greet:
    - text: "您好，请问您要办理什么？"
      buttons:
        - title: "投诉举报"
          payload: "/complaint"
  utter_complaint:
    - text: "请描述您要投诉的问题。"
    - text: "请在微信里直接描述您要投诉的问题。"
      channel: wechat
"""
TINY_CONFIG = """\
recipe: default.v1
assistant_id: wechat_channel_test
language: zh
pipeline:
  - name: KeywordIntentClassifier
policies:
  - name: RulePolicy
"""
TINY_DATA = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - 你好
    - 您好
- intent: complaint
  examples: |
    - 投诉
    - 举报
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: complaint
  steps:
  - intent: complaint
  - action: utter_complaint
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from rasa.api import train

    folder = tmp_path_factory.mktemp("tiny_rasa")
    for name, text in (("domain.yml", TINY_DOMAIN), ("config.yml", TINY_CONFIG), ("data.yml", TINY_DATA)):
        (folder / name).write_text(text, encoding="utf-8")
    result = train(str(folder / "domain.yml"), str(folder / "config.yml"), [str(folder / "data.yml")],
                   output=str(folder / "models"), fixed_model_name="tiny")
    assert result.code == 0 and result.model
    return result.model


@pytest.mark.slow
def test_real_rasa_agent_behind_the_channel(tiny_model: str):
    from rasa.core.agent import load_agent

    async def scenario():
        agent = await load_agent(model_path=tiny_model)
        async with running(agent) as stack:  # Rasa's Agent instead of the scripted bot
            first = (await stack.post(text_xml("你好", new_msg_id()))).reply
            assert first["Content"] == f"您好，请问您要办理什么？\n1. 投诉举报\n{OPTIONS_HINT}"
            second = (await stack.post(text_xml("1", new_msg_id()))).reply  # option number → "/complaint"
            assert second["Content"] == "请在微信里直接描述您要投诉的问题。"  # the `channel: wechat` variant
            tracker = await agent.tracker_store.retrieve(OPENID)
            user_events = [e for e in tracker.events if e.type_name == "user"]
            assert [e.text for e in user_events] == ["你好", "/complaint"]
            assert {e.input_channel for e in user_events} == {"wechat"}

    run(scenario())
