"""WeChat official account (微信公众号) connector: a custom Rasa input channel.

Enable it in ``bot/credentials.yml`` (see the commented entry there)::

    bot.channels.wechat.WeChatInput:
      token: ${WECHAT_TOKEN}          # 服务器配置 → 令牌(Token); unquoted, or Rasa does not substitute it
      appid: ${WECHAT_APP_ID}
      secret: ${WECHAT_APP_SECRET}

and set the account's server URL (服务器地址) to ``https://<public host>/webhooks/wechat/webhook`` with the
message encryption mode 明文模式 (plaintext; 安全模式/AES is not implemented).

Protocol, as implemented here:

* ``GET /webhooks/wechat/webhook`` — URL verification: ``signature`` must equal the SHA-1 of the sorted
  concatenation of token, ``timestamp`` and ``nonce``; the ``echostr`` is echoed back, otherwise 403.
* ``POST /webhooks/wechat/webhook`` — the same signature in the query string (403 when missing or forged; also
  403 when ``timestamp`` is further than ``max_clock_skew`` seconds from our clock, against replays). The XML
  body is parsed with expat with every DTD feature refused (no DOCTYPE, no entity declarations, no external
  entities), so XXE and entity-expansion bombs are impossible; malformed XML is a 400.
* Text messages go to Rasa with ``sender_id`` = the citizen's OpenID (``FromUserName``) and input channel
  ``wechat``. WeChat waits 5 seconds for the HTTP answer, which may carry one passive reply (被动回复). The bot
  gets ``reply_timeout`` seconds (default 4.5): when it is done in time, its messages come back as one passive
  XML text reply; otherwise the answer is ``success`` (WeChat's "no reply") at the deadline and the bot's
  messages — those already produced and those still to come — are sent through the customer-service message
  API (客服消息, ``POST {api_base}/cgi-bin/message/custom/send``) by :class:`WeChatOutput`. Its access token
  (``GET {api_base}/cgi-bin/token``) is cached until shortly before it expires and fetched again when WeChat
  reports it invalid.
* WeChat retries an unanswered message up to three times, about every 5 seconds, with the same ``MsgId``.
  Each message is processed once: a retry that arrives while the first delivery is still being processed waits
  for that processing's answer (until its own deadline, then ``success``), a later retry gets the same answer
  again. The record is kept in a bounded in-process TTL cache. Several Rasa instances behind a load balancer
  do not share that cache: configure ``redis_url`` and the message is claimed in Redis (``SET NX EX``), the
  winner publishes its answer there and the other instances poll for it. Redis errors fail open (the message is
  processed rather than lost). The numbered options of the last reply (see below) and the access token are
  shared through Redis too (without it, each instance fetches its own token, and every fetch invalidates the
  previous token after WeChat's grace period and uses up the daily quota).
* Late deliveries still under way when the server stops are lost (the passive reply, when given, is not).
* WeChat text has no buttons: buttons are rendered as numbered options, and a reply consisting of only an
  option's number (or its exact title) is sent to Rasa as that button's payload.
* Images, voice (unless WeChat's speech recognition supplied a transcript), video, location and links get a
  friendly Chinese answer; the ``subscribe`` event gets the welcome text; other events get ``success``.
* Logs never contain message text with phone or ID-card numbers in clear (``core.logging.mask_pii``, which
  depends on the standard library only and therefore also runs in the Rasa environment); access tokens and the
  app secret are never logged.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple
from xml.parsers import expat

import aiohttp
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, OutputChannel, UserMessage
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core.logging import mask_pii

logger = logging.getLogger(__name__)

CHANNEL_NAME = "wechat"
DEFAULT_API_BASE = "https://api.weixin.qq.com"
SUCCESS = "success"  # the body WeChat accepts as "received, no passive reply"

DEFAULT_WELCOME_TEXT = (
    "您好，欢迎关注接诉即办助手！请直接用文字描述您要反映的问题或咨询的事项，"
    "例如发生的地点、时间和具体情况，我们会尽快为您登记和转办。"
    "如遇火灾、治安、急救等紧急情况，请立即拨打119、110、120。"
)
NON_TEXT_REPLY = "目前只支持文字消息，请用文字描述您的诉求。"
ERROR_REPLY = "抱歉，系统暂时无法处理您的消息，请稍后再试，或直接拨打12345热线。"
OPTIONS_HINT = "请回复序号进行选择。"
# what WeChat sends as a text message's Content for things it cannot forward (stickers, some emoji, …)
UNSUPPORTED_PLACEHOLDER = "【收到不支持的消息类型，暂无法显示】"

# errcode values of the WeChat API that mean "this access token is not (or no longer) valid"
TOKEN_ERRORS = frozenset({40001, 40014, 42001})

MAX_BODY_BYTES = 64 * 1024  # WeChat's plaintext message XML is well under 4 KiB


# ----------------------------------------------------------------------------------------------------------------
# Signature and XML
# ----------------------------------------------------------------------------------------------------------------


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    """SHA-1 hex digest of the lexicographically sorted concatenation of token, timestamp and nonce."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode("utf-8")).hexdigest()


def verify_signature(
    token: str,
    signature: Optional[str],
    timestamp: Optional[str],
    nonce: Optional[str],
    *,
    max_clock_skew: float = 0,
    now: Optional[float] = None,
) -> bool:
    """True when the query parameters were signed with ``token`` (and, if ``max_clock_skew``, are fresh)."""
    if not token or not signature or not timestamp or nonce is None:
        return False
    expected = wechat_signature(token, timestamp, nonce)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        return False
    if max_clock_skew > 0:
        if not timestamp.isdigit():
            return False
        if abs((time.time() if now is None else now) - int(timestamp)) > max_clock_skew:
            return False
    return True


class WeChatXMLError(ValueError):
    """The request body is not an acceptable WeChat message document."""


def _refuse(what: str) -> Callable[..., None]:
    def handler(*_args: Any) -> None:
        raise WeChatXMLError(f"{what} is not allowed in WeChat messages")

    return handler


def parse_wechat_xml(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> Dict[str, str]:
    """Parse a WeChat message (``<xml><Field>value</Field>…</xml>``) into ``{field: text}``.

    Untrusted input: any DOCTYPE, entity declaration or external entity reference is refused before anything is
    expanded (expat reports the DOCTYPE before its internal subset is processed), so neither XXE nor
    "billion laughs" is possible. Only the root's direct children are returned; nested elements (e.g.
    ``ScanCodeInfo``) contribute their text to their top-level parent.
    """
    if len(body) > max_bytes:
        raise WeChatXMLError(f"body larger than {max_bytes} bytes")
    if not body.strip():
        raise WeChatXMLError("empty body")
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("DOCTYPE")
    parser.EntityDeclHandler = _refuse("an entity declaration")
    parser.UnparsedEntityDeclHandler = _refuse("an entity declaration")
    parser.ExternalEntityRefHandler = _refuse("an external entity")
    parser.NotationDeclHandler = _refuse("a notation declaration")

    fields: Dict[str, str] = {}
    state = {"depth": 0, "root": None, "current": None}
    buffer: List[str] = []

    def start(name: str, _attrs: Dict[str, str]) -> None:
        state["depth"] += 1
        if state["depth"] == 1:
            state["root"] = name
        elif state["depth"] == 2:
            state["current"] = name
            buffer.clear()

    def end(name: str) -> None:
        if state["depth"] == 2 and state["current"] is not None:
            fields[state["current"]] = "".join(buffer).strip()
            state["current"] = None
        state["depth"] -= 1

    def chars(data: str) -> None:
        if state["depth"] >= 2:
            buffer.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise WeChatXMLError(f"malformed XML: {expat.ErrorString(exc.code)}") from None
    if state["root"] != "xml":
        raise WeChatXMLError("the root element must be <xml>")
    return fields


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply_xml(to_user: str, from_user: str, content: str, create_time: Optional[int] = None) -> str:
    """A passive text reply (被动回复文本消息)."""
    return (
        "<xml>"
        f"<ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(time.time()) if create_time is None else int(create_time)}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(content)}</Content>"
        "</xml>"
    )


@dataclass(frozen=True)
class WeChatMessage:
    """The fields of an incoming WeChat message that the channel uses."""

    to_user: str  # the official account's original ID (gh_…)
    from_user: str  # the citizen's OpenID
    create_time: str
    msg_type: str
    content: str = ""
    msg_id: str = ""
    event: str = ""
    recognition: str = ""
    encrypted: bool = False

    @classmethod
    def from_fields(cls, fields: Dict[str, str]) -> "WeChatMessage":
        to_user, from_user = fields.get("ToUserName", ""), fields.get("FromUserName", "")
        if not to_user or not from_user:
            raise WeChatXMLError("ToUserName and FromUserName are required")
        msg_type = fields.get("MsgType", "").lower()
        encrypted = bool(fields.get("Encrypt")) and not msg_type
        if not msg_type and not encrypted:
            raise WeChatXMLError("MsgType is required")
        return cls(
            to_user=to_user,
            from_user=from_user,
            create_time=fields.get("CreateTime", ""),
            msg_type=msg_type,
            content=fields.get("Content", ""),
            msg_id=fields.get("MsgId", ""),
            event=fields.get("Event", "").lower(),
            recognition=fields.get("Recognition", ""),
            encrypted=encrypted,
        )

    @property
    def dedup_key(self) -> str:
        # WeChat's advice: MsgId for messages, FromUserName + CreateTime for events.
        return f"{self.to_user}:{self.msg_id or f'{self.from_user}:{self.create_time}:{self.msg_type}'}"


def _short_id(openid: str) -> str:
    """Enough of an OpenID to correlate log lines, not the whole identifier."""
    return f"…{openid[-6:]}" if len(openid) > 6 else openid


# ----------------------------------------------------------------------------------------------------------------
# Rendering bot messages as WeChat text
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Rendered:
    texts: List[str] = field(default_factory=list)
    raw: List[Dict[str, Any]] = field(default_factory=list)  # customer-service payloads without "touser"
    options: Optional[List[Dict[str, str]]] = None


def render_options(text: str, buttons: List[Dict[str, Any]]) -> Tuple[str, List[Dict[str, str]]]:
    """Buttons as numbered lines under the text, and the options a numbered answer refers to."""
    options = []
    lines = [text.strip()] if text and text.strip() else []
    for index, button in enumerate(buttons, start=1):
        title = str(button.get("title") or button.get("payload") or "").strip()
        payload = str(button.get("payload") or title)
        options.append({"title": title, "payload": payload})
        lines.append(f"{index}. {title}")
    if options:
        lines.append(OPTIONS_HINT)
    return "\n".join(lines), options


def render_message(message: Dict[str, Any]) -> Rendered:
    """One bot message (Rasa's message dict: text, buttons, quick_replies, image, attachment, elements, custom)."""
    out = Rendered()
    text = message.get("text") or ""
    buttons = message.get("buttons") or message.get("quick_replies")
    if buttons:
        rendered, out.options = render_options(text, buttons)
        out.texts.append(rendered)
    elif text.strip():
        out.texts.append(text.strip())
    for element in message.get("elements") or []:
        head = " : ".join(str(element.get(k)) for k in ("title", "subtitle") if element.get(k))
        rendered, options = render_options(head, element.get("buttons") or [])
        if rendered:
            out.texts.append(rendered)
        if options:
            out.options = options
    if message.get("image"):
        out.texts.append(f"图片：{message['image']}")
    attachment = message.get("attachment")
    if attachment:
        out.texts.append(attachment if isinstance(attachment, str) else json.dumps(attachment, ensure_ascii=False))
    custom = message.get("custom")
    if isinstance(custom, dict) and custom.get("msgtype"):
        # a WeChat customer-service message body, e.g. {"msgtype": "news", "news": {...}} in a response with
        # `channel: wechat`; text ones are treated like ordinary text
        if custom["msgtype"] == "text" and isinstance(custom.get("text"), dict):
            out.texts.append(str(custom["text"].get("content", "")))
        else:
            out.raw.append(custom)
    elif custom is not None:
        logger.debug("wechat: custom payload without msgtype ignored")
    return out


def split_utf8(text: str, limit: int) -> List[str]:
    """Pieces of ``text`` of at most ``limit`` UTF-8 bytes, cut at line breaks where possible."""
    if len(text.encode("utf-8")) <= limit:
        return [text]
    pieces, current, size = [], [], 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            chunk = "".join(current)
            cut = chunk.rfind("\n")
            if cut > len(chunk) // 2:
                pieces.append(chunk[:cut])
                current, size = list(chunk[cut + 1 :]), len(chunk[cut + 1 :].encode("utf-8"))
            else:
                pieces.append(chunk)
                current, size = [], 0
        current.append(char)
        size += width
    if current:
        pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def pack_texts(texts: List[str], limit: int, separator: str = "\n\n") -> List[str]:
    """Join texts (in order) into as few pieces of at most ``limit`` UTF-8 bytes as possible."""
    packed: List[str] = []
    for text in texts:
        for piece in split_utf8(text, limit):
            if packed and len((packed[-1] + separator + piece).encode("utf-8")) <= limit:
                packed[-1] = packed[-1] + separator + piece
            else:
                packed.append(piece)
    return packed


_CHOICE = re.compile(r"^\s*(?:第)?(\d{1,2})\s*(?:个|项|号)?\s*[.。、:：)）]?\s*$")


def resolve_choice(text: str, options: Optional[List[Dict[str, str]]]) -> Optional[str]:
    """The payload of the option the citizen picked by number ("2", "２", "第2项") or by its exact title."""
    if not options:
        return None
    normalized = unicodedata.normalize("NFKC", text).strip()
    match = _CHOICE.match(normalized)
    if match:
        index = int(match.group(1))
        if 1 <= index <= len(options):
            return options[index - 1]["payload"]
        return None
    for option in options:
        if normalized == unicodedata.normalize("NFKC", option["title"]).strip():
            return option["payload"]
    return None


# ----------------------------------------------------------------------------------------------------------------
# Shared state: option memory and de-duplication (in process, optionally Redis)
# ----------------------------------------------------------------------------------------------------------------


class _TTLCache:
    """A bounded mapping whose entries expire ``ttl`` seconds after insertion (oldest evicted first)."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._data: "OrderedDict[str, Tuple[float, Any]]" = OrderedDict()

    def _purge(self, now: float) -> None:
        while self._data:
            key, (expires, _) = next(iter(self._data.items()))
            if expires > now and len(self._data) <= self.max_entries:
                break
            self._data.popitem(last=False)

    def get(self, key: str) -> Any:
        now = time.monotonic()
        item = self._data.get(key)
        if item is None or item[0] <= now:
            return None
        return item[1]

    def put(self, key: str, value: Any) -> None:
        now = time.monotonic()
        self._data.pop(key, None)
        self._data[key] = (now + self.ttl, value)
        self._purge(now)

    def pop(self, key: str) -> Any:
        item = self._data.pop(key, None)
        if item is None or item[0] <= time.monotonic():
            return None
        return item[1]

    def __len__(self) -> int:
        return len(self._data)


class _SharedStore:
    """Optional Redis store shared by several Rasa instances; every operation fails open on Redis errors."""

    PENDING = b"pending"

    def __init__(self, url: Optional[str], prefix: str, dedup_ttl: float, options_ttl: float) -> None:
        self.url, self.prefix = url, prefix
        self.dedup_ttl, self.options_ttl = max(1, int(dedup_ttl)), max(1, int(options_ttl))
        self._client: Any = None

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close(close_connection_pool=True)

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}:{kind}:{key}"

    async def claim(self, key: str) -> bool:
        """True when this instance should process the message (also when Redis is unavailable)."""
        try:
            return bool(await self._redis().set(self._key("msg", key), self.PENDING, nx=True, ex=self.dedup_ttl))
        except Exception as exc:  # noqa: BLE001 - any Redis failure: process rather than lose the message
            logger.warning("wechat: Redis dedup unavailable (%s); processing without it", type(exc).__name__)
            return True

    async def publish(self, key: str, body: str) -> None:
        try:
            await self._redis().set(self._key("msg", key), b"r:" + body.encode("utf-8"), ex=self.dedup_ttl)
        except Exception as exc:  # noqa: BLE001
            logger.warning("wechat: could not publish the reply to Redis (%s)", type(exc).__name__)

    async def wait_answer(self, key: str, deadline: float, poll: float = 0.1) -> str:
        """The answer another instance published for ``key``, or ``success`` when none comes before the deadline."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                value = await self._redis().get(self._key("msg", key))
            except Exception as exc:  # noqa: BLE001
                logger.warning("wechat: Redis unavailable while waiting for an answer (%s)", type(exc).__name__)
                return SUCCESS
            if value is None:  # expired: the owner is gone; WeChat's next retry (if any) gets `success` too
                return SUCCESS
            if value.startswith(b"r:"):
                return value[2:].decode("utf-8")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return SUCCESS
            await asyncio.sleep(min(poll, remaining))

    async def get_token(self, appid: str) -> Optional[Tuple[str, float]]:
        """The access token another instance stored, and its remaining lifetime in seconds."""
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                value, ttl = await pipe.get(self._key("token", appid)).ttl(self._key("token", appid)).execute()
        except Exception as exc:  # noqa: BLE001
            logger.warning("wechat: could not read the shared access token from Redis (%s)", type(exc).__name__)
            return None
        if not value or ttl is None or ttl <= 0:
            return None
        return value.decode("utf-8"), float(ttl)

    async def put_token(self, appid: str, token: str, lifetime: float) -> None:
        try:
            await self._redis().set(self._key("token", appid), token.encode("utf-8"), ex=max(1, int(lifetime)))
        except Exception as exc:  # noqa: BLE001
            logger.warning("wechat: could not share the access token through Redis (%s)", type(exc).__name__)

    async def drop_token(self, appid: str, token: str) -> None:
        """Forget the shared token if it still is ``token`` (another instance may have replaced it already)."""
        key = self._key("token", appid)
        try:
            client = self._redis()
            if await client.get(key) == token.encode("utf-8"):
                await client.delete(key)
        except Exception as exc:  # noqa: BLE001
            logger.warning("wechat: could not drop the shared access token in Redis (%s)", type(exc).__name__)

    async def save_options(self, openid: str, options: Optional[List[Dict[str, str]]]) -> None:
        try:
            key = self._key("options", openid)
            if options:
                await self._redis().set(key, json.dumps(options, ensure_ascii=False), ex=self.options_ttl)
            else:
                await self._redis().delete(key)
        except Exception as exc:  # noqa: BLE001
            logger.warning("wechat: could not store reply options in Redis (%s)", type(exc).__name__)

    async def take_options(self, openid: str) -> Optional[List[Dict[str, str]]]:
        try:
            client = self._redis()
            key = self._key("options", openid)
            async with client.pipeline(transaction=True) as pipe:
                value, _ = await pipe.get(key).delete(key).execute()
        except Exception as exc:  # noqa: BLE001
            logger.warning("wechat: could not read reply options from Redis (%s)", type(exc).__name__)
            return None
        return json.loads(value) if value else None


class _OptionMemory:
    """The numbered options last shown to each citizen (in process, and in Redis when configured)."""

    def __init__(self, ttl: float, max_entries: int, shared: _SharedStore) -> None:
        self._local = _TTLCache(ttl, max_entries)
        self._shared = shared

    async def remember(self, openid: str, options: Optional[List[Dict[str, str]]]) -> None:
        if options:
            self._local.put(openid, options)
        else:
            self._local.pop(openid)
        if self._shared.enabled:
            await self._shared.save_options(openid, options)

    async def take(self, openid: str) -> Optional[List[Dict[str, str]]]:
        local = self._local.pop(openid)
        if self._shared.enabled:
            shared = await self._shared.take_options(openid)
            return shared if shared is not None else local
        return local


class _Job:
    """One message being processed; retries wait on it."""

    def __init__(self) -> None:
        self._done = asyncio.Event()
        self.body = SUCCESS

    def resolve(self, body: str) -> None:
        if not self._done.is_set():
            self.body = body
            self._done.set()

    async def answer(self, deadline: float) -> str:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(self._done.wait(), timeout=max(0.0, remaining))
        except asyncio.TimeoutError:
            return SUCCESS
        return self.body


# ----------------------------------------------------------------------------------------------------------------
# WeChat API client and output channel
# ----------------------------------------------------------------------------------------------------------------


class WeChatApiError(RasaException):
    def __init__(self, errcode: Any, errmsg: Any) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


class WeChatApiClient:
    """The two calls the channel needs: the access token (cached) and customer-service messages."""

    def __init__(self, appid: str, secret: str, api_base: str = DEFAULT_API_BASE, http_timeout: float = 10.0,
                 shared: Optional["_SharedStore"] = None) -> None:
        self.appid, self._secret = appid, secret
        self.api_base = api_base.rstrip("/")
        self.http_timeout = http_timeout
        # with Redis, all instances use one token: each fetch of a new token invalidates the previous one (after
        # a few minutes' grace) and counts against the account's daily quota
        self._shared = shared if shared is not None and shared.enabled else None
        self._token: Optional[str] = None
        self._expires = 0.0
        self._lock: Optional[asyncio.Lock] = None

    async def _call(self, method: str, path: str, params: Dict[str, str], payload: Any = None) -> Dict[str, Any]:
        data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.http_timeout)) as session:
                async with session.request(method, self.api_base + path, params=params, data=data,
                                           headers=headers) as resp:
                    if resp.status != 200:
                        raise WeChatApiError(-1, f"HTTP {resp.status} from {path}")
                    body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            # never let the URL (it carries the access token or the secret) reach an error message
            raise WeChatApiError(-1, f"{type(exc).__name__} calling {path}") from None
        if not isinstance(body, dict):
            raise WeChatApiError(-1, f"unexpected answer from {path}")
        return body

    async def access_token(self) -> str:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = time.monotonic()
            if self._token and now < self._expires:
                return self._token
            if self._shared is not None:
                stored = await self._shared.get_token(self.appid)
                if stored is not None:
                    self._token, self._expires = stored[0], now + stored[1]
                    return self._token
            body = await self._call(
                "GET", "/cgi-bin/token",
                {"grant_type": "client_credential", "appid": self.appid, "secret": self._secret},
            )
            token = body.get("access_token")
            if not token:
                raise WeChatApiError(body.get("errcode"), body.get("errmsg"))
            expires_in = int(body.get("expires_in") or 7200)
            lifetime = expires_in - min(300, expires_in // 10)
            self._token, self._expires = str(token), now + lifetime
            logger.info("wechat: access token obtained, valid for %d s", expires_in)
            if self._shared is not None:
                await self._shared.put_token(self.appid, self._token, lifetime)
            return self._token

    async def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token, self._expires = None, 0.0
        if self._shared is not None:
            await self._shared.drop_token(self.appid, token)

    async def send_custom_message(self, payload: Dict[str, Any]) -> None:
        """``POST /cgi-bin/message/custom/send``; a rejected token is replaced once."""
        for attempt in (1, 2):
            token = await self.access_token()
            body = await self._call("POST", "/cgi-bin/message/custom/send", {"access_token": token}, payload)
            code = int(body.get("errcode") or 0)
            if code == 0:
                return
            if code in TOKEN_ERRORS and attempt == 1:
                logger.info("wechat: access token rejected (errcode %d), fetching a new one", code)
                await self.invalidate(token)
                continue
            raise WeChatApiError(code, body.get("errmsg"))


class WeChatOutput(OutputChannel):
    """Sends bot messages through WeChat's customer-service message API (客服消息).

    Used for replies that miss the passive-reply deadline, for the parts of a reply that do not fit into one
    passive reply, and for messages Rasa sends on its own initiative (e.g. ``trigger_intent`` with
    ``output_channel=wechat``). WeChat accepts such messages within 48 hours of the citizen's last message.
    """

    def __init__(self, api: WeChatApiClient, options: Optional[_OptionMemory] = None,
                 max_message_bytes: int = 2048) -> None:
        self.api = api
        self.options = options
        self.max_message_bytes = max_message_bytes

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    async def send_rendered(self, recipient_id: str, rendered: Rendered) -> None:
        if rendered.options is not None and self.options is not None:
            await self.options.remember(recipient_id, rendered.options)
        for text in rendered.texts:
            await self.send_text_message(recipient_id, text)
        for raw in rendered.raw:
            await self.api.send_custom_message({**raw, "touser": recipient_id})

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        await self.send_rendered(recipient_id, render_message(message))

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for piece in split_utf8(text, self.max_message_bytes):
            await self.api.send_custom_message({"touser": recipient_id, "msgtype": "text", "text": {"content": piece}})

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: List[Dict[str, Any]],
                                     **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text, "buttons": buttons})

    async def send_quick_replies(self, recipient_id: str, text: str, quick_replies: List[Dict[str, Any]],
                                 **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text, "buttons": quick_replies})

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        # WeChat images need an uploaded media_id; a link is what can be sent from a URL
        await self.send_text_message(recipient_id, f"图片：{image}")

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"custom": json_message})


class _DeadlineCollector(CollectingOutputChannel):
    """Collects the bot's messages for the passive reply; after the deadline it forwards them to WeChatOutput."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = asyncio.Lock()
        self._push_to: Optional[WeChatOutput] = None

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME  # so that responses with `channel: wechat` are chosen

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._persist_message(self._message(recipient_id, text=text))  # one message, not one per paragraph

    async def _persist_message(self, message: Dict[str, Any]) -> None:
        async with self._lock:
            if self._push_to is None:
                self.messages.append(message)
            else:
                await _push(self._push_to, message)

    async def switch_to_push(self, output: WeChatOutput) -> None:
        """Send what was collected so far, and every later message as it comes, through ``output``."""
        async with self._lock:
            pending, self.messages = self.messages, []
            self._push_to = output
            for message in pending:
                await _push(output, message)


async def _push(output: WeChatOutput, message: Dict[str, Any]) -> None:
    message = dict(message)
    recipient = message.pop("recipient_id", "")
    try:
        await output.send_response(recipient, message)
    except Exception as exc:  # noqa: BLE001 - a failed delivery must not break the conversation
        logger.error("wechat: customer-service message to %s failed: %s", _short_id(recipient), mask_pii(str(exc)))


# ----------------------------------------------------------------------------------------------------------------
# Input channel
# ----------------------------------------------------------------------------------------------------------------


def _as_float(credentials: Dict[str, Any], key: str, default: float) -> float:
    value = credentials.get(key)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RasaException(f"wechat channel: '{key}' must be a number, got {value!r}") from None


class WeChatInput(InputChannel):
    """WeChat official account webhook (plaintext mode) with passive replies and late delivery."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "WeChatInput":
        if not credentials:
            cls.raise_missing_credentials_exception()
        missing = [key for key in ("token", "appid", "secret") if not str(credentials.get(key) or "").strip()]
        if missing:
            raise RasaException(f"wechat channel: missing credentials {missing} (see bot/credentials.yml)")
        return cls(
            token=str(credentials["token"]).strip(),
            appid=str(credentials["appid"]).strip(),
            secret=str(credentials["secret"]).strip(),
            api_base=str(credentials.get("api_base") or DEFAULT_API_BASE),
            reply_timeout=_as_float(credentials, "reply_timeout", 4.5),
            max_clock_skew=_as_float(credentials, "max_clock_skew", 300),
            dedup_ttl=_as_float(credentials, "dedup_ttl", 60),
            dedup_max_entries=int(_as_float(credentials, "dedup_max_entries", 10000)),
            options_ttl=_as_float(credentials, "options_ttl", 1800),
            redis_url=str(credentials.get("redis_url") or "") or None,
            redis_key_prefix=str(credentials.get("redis_key_prefix") or "jsjb:wechat"),
            welcome_text=str(credentials.get("welcome_text") or DEFAULT_WELCOME_TEXT),
            max_reply_bytes=int(_as_float(credentials, "max_reply_bytes", 2048)),
            http_timeout=_as_float(credentials, "http_timeout", 10),
        )

    def __init__(
        self,
        token: str,
        appid: str,
        secret: str,
        api_base: str = DEFAULT_API_BASE,
        reply_timeout: float = 4.5,
        max_clock_skew: float = 300,
        dedup_ttl: float = 60,
        dedup_max_entries: int = 10000,
        options_ttl: float = 1800,
        redis_url: Optional[str] = None,
        redis_key_prefix: str = "jsjb:wechat",
        welcome_text: str = DEFAULT_WELCOME_TEXT,
        max_reply_bytes: int = 2048,
        http_timeout: float = 10.0,
    ) -> None:
        if not token:
            raise RasaException("wechat channel: a token is required")
        if not 0 < reply_timeout < 5:
            raise RasaException("wechat channel: reply_timeout must be between 0 and 5 seconds (WeChat waits 5 s)")
        self.token = token
        self.reply_timeout = reply_timeout
        self.max_clock_skew = max_clock_skew
        self.welcome_text = welcome_text
        self.max_reply_bytes = max_reply_bytes
        self.shared = _SharedStore(redis_url, redis_key_prefix, dedup_ttl, options_ttl)
        self.api = WeChatApiClient(appid, secret, api_base, http_timeout, self.shared)
        self.options = _OptionMemory(options_ttl, dedup_max_entries, self.shared)
        self._jobs = _TTLCache(dedup_ttl, dedup_max_entries)
        self._tasks: set = set()

    def get_output_channel(self) -> WeChatOutput:
        return WeChatOutput(self.api, self.options, self.max_reply_bytes)

    # -- HTTP ------------------------------------------------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("wechat_webhook")

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify_url(request: Request) -> HTTPResponse:
            if not self._signed(request):
                logger.warning("wechat: URL verification with an invalid signature refused")
                return response.text("invalid signature", status=403)
            return response.text(request.args.get("echostr", ""))

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            deadline = asyncio.get_running_loop().time() + self.reply_timeout
            if not self._signed(request):
                logger.warning("wechat: message with a missing or invalid signature refused")
                return response.text("invalid signature", status=403)
            try:
                message = WeChatMessage.from_fields(parse_wechat_xml(request.body or b""))
            except WeChatXMLError as exc:
                logger.warning("wechat: bad message body refused: %s", exc)
                status = 413 if len(request.body or b"") > MAX_BODY_BYTES else 400
                return response.text("bad request", status=status)
            body = await self._answer(message, on_new_message, deadline)
            if body == SUCCESS:
                return response.text(SUCCESS)
            return response.text(body, content_type="application/xml; charset=utf-8")

        @bp.listener("after_server_stop")
        async def close_shared(*_: Any) -> None:
            await self.shared.close()

        return bp

    def _signed(self, request: Request) -> bool:
        return verify_signature(
            self.token, request.args.get("signature"), request.args.get("timestamp"), request.args.get("nonce"),
            max_clock_skew=self.max_clock_skew,
        )

    # -- messages -----------------------------------------------------------------------------------------

    async def _answer(self, message: WeChatMessage, on_new_message: Callable[[UserMessage], Awaitable[Any]],
                      deadline: float) -> str:
        if message.encrypted:
            logger.error("wechat: encrypted message received; set 消息加解密方式 to 明文模式 (AES is not supported)")
            return SUCCESS
        if message.msg_type == "event":
            if message.event == "subscribe":
                return text_reply_xml(message.from_user, message.to_user, self.welcome_text)
            return SUCCESS
        if message.msg_type == "text" and message.content.strip() != UNSUPPORTED_PLACEHOLDER:
            text = message.content
        elif message.msg_type == "voice" and message.recognition.strip():
            text = message.recognition  # WeChat's speech recognition transcript, where the account has it
        else:
            logger.info("wechat: %s message from %s answered with the text-only notice", message.msg_type,
                        _short_id(message.from_user))
            return text_reply_xml(message.from_user, message.to_user, NON_TEXT_REPLY)
        if not text.strip():
            return SUCCESS
        return await self._dispatch_text(message, text, on_new_message, deadline)

    async def _dispatch_text(self, message: WeChatMessage, text: str,
                             on_new_message: Callable[[UserMessage], Awaitable[Any]], deadline: float) -> str:
        key = message.dedup_key
        job = self._jobs.get(key)
        if job is not None:
            logger.info("wechat: retry of message %s; answering with the first processing's result", message.msg_id)
            return await job.answer(deadline)
        if self.shared.enabled and not await self.shared.claim(key):
            logger.info("wechat: message %s is processed by another instance; waiting for its answer", message.msg_id)
            return await self.shared.wait_answer(key, deadline)
        job = self._jobs.get(key)  # a local retry may have started while Redis was asked
        if job is None:
            job = _Job()
            self._jobs.put(key, job)
            self._spawn(self._guarded(job, key, message, text, on_new_message, deadline))
        return await job.answer(deadline)

    async def _guarded(self, job: _Job, *args: Any) -> None:
        try:
            await self._process(job, *args)
        except Exception as exc:  # noqa: BLE001 - a background task: log instead of "exception never retrieved"
            logger.error("wechat: processing failed: %s", mask_pii(repr(exc)))
        finally:
            job.resolve(SUCCESS)  # no-op when an answer was given

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        # independent of the HTTP request: Sanic cancels a request's handler when WeChat hangs up at 5 s
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, job: _Job, key: str, message: WeChatMessage, text: str,
                       on_new_message: Callable[[UserMessage], Awaitable[Any]], deadline: float) -> None:
        openid = message.from_user
        payload = resolve_choice(text, await self.options.take(openid))
        logger.info("wechat: text message %s from %s (%d characters%s)", message.msg_id, _short_id(openid), len(text),
                    ", an option number" if payload else "")
        logger.debug("wechat: message text: %s", mask_pii(text))
        collector = _DeadlineCollector()
        user_message = UserMessage(
            payload or text, collector, sender_id=openid, input_channel=self.name(),
            message_id=message.msg_id or None,
            metadata={"wechat": {"account": message.to_user, "msg_id": message.msg_id,
                                 "create_time": message.create_time, "msg_type": message.msg_type}},
        )
        bot = asyncio.ensure_future(on_new_message(user_message))
        loop = asyncio.get_running_loop()
        done, _ = await asyncio.wait({bot}, timeout=max(0.0, deadline - loop.time()))
        if bot in done:
            messages = list(collector.messages)
            if bot.cancelled() or bot.exception() is not None:
                logger.error("wechat: the bot failed on message %s: %s", message.msg_id,
                             "cancelled" if bot.cancelled() else mask_pii(repr(bot.exception())))
                messages.append({"recipient_id": openid, "text": ERROR_REPLY})
            body, rest = await self._passive_reply(message, messages)
            job.resolve(body)
            if self.shared.enabled:
                await self.shared.publish(key, body)
            if rest.texts or rest.raw:
                await self._deliver_late(openid, rest)
            return

        logger.info("wechat: the bot missed the %.1f s deadline on message %s; replying through the "
                    "customer-service API", self.reply_timeout, message.msg_id)
        job.resolve(SUCCESS)
        if self.shared.enabled:
            await self.shared.publish(key, SUCCESS)
        output = self.get_output_channel()
        await collector.switch_to_push(output)
        try:
            await bot
        except Exception as exc:  # noqa: BLE001
            logger.error("wechat: the bot failed on message %s: %s", message.msg_id, mask_pii(repr(exc)))
            await _push(output, {"recipient_id": openid, "text": ERROR_REPLY})

    async def _passive_reply(self, message: WeChatMessage, messages: List[Dict[str, Any]]) -> Tuple[str, Rendered]:
        """The passive XML reply (first piece) and what has to follow through the customer-service API."""
        texts: List[str] = []
        rest = Rendered()
        options = None
        for item in messages:
            rendered = render_message({k: v for k, v in item.items() if k != "recipient_id"})
            texts.extend(rendered.texts)
            rest.raw.extend(rendered.raw)
            if rendered.options is not None:
                options = rendered.options
        if options is not None:  # the previous options were taken when this message came in
            await self.options.remember(message.from_user, options)
        pieces = pack_texts(texts, self.max_reply_bytes)
        if not pieces:
            return SUCCESS, rest
        rest.texts = pieces[1:]
        return text_reply_xml(message.from_user, message.to_user, pieces[0]), rest

    async def _deliver_late(self, openid: str, rendered: Rendered) -> None:
        output = WeChatOutput(self.api, None, self.max_reply_bytes)  # options were remembered already
        try:
            await output.send_rendered(openid, rendered)
        except Exception as exc:  # noqa: BLE001
            logger.error("wechat: customer-service message to %s failed: %s", _short_id(openid), mask_pii(str(exc)))
