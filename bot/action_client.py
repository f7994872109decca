"""How the Rasa server talks to the action server: kept-alive connections, and the domain sent once.

Rasa 3.6 opens a new ``aiohttp.ClientSession`` - and so a new TCP connection - for every call to an endpoint, and
puts the whole domain (~25 kB of JSON) into every action call beside the tracker. Under the 20-citizen load, about 6
action calls per turn made connecting, closing and encoding the domain ~5 % of a Rasa worker's CPU, plus accepting
and parsing on the action server's side (py-spy, ``benchmarks/README.md``).

- :func:`install_kept_alive_sessions`: ``EndpointConfig.session()`` hands out one session per event loop and
  endpoint settings, whose connection pool stays open; ``async with`` no longer closes it, the server's
  ``after_server_stop`` does. Idle connections are dropped by the client after :data:`IDLE_CONNECTION_S`, before
  the action server (uvicorn: 5 s) closes them, so a request never goes out on a connection the server is closing.
- :func:`install_domain_digest`: the action-server protocol of later Rasa versions, which ``rasa_sdk`` (3.21 in the
  services environment) already speaks. Every call carries ``domain_digest``; the domain itself goes only until the
  action server has accepted a call for that digest. An action server that does not have it (first call, restart,
  another instance behind the same URL) answers 449, and the call is repeated once with the domain - the action
  had not run. Every action, ``validate_*`` included, still receives the domain: the executor passes its copy.
"""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional, Text, Tuple

import aiohttp

# seconds an idle kept-alive connection stays in the client's pool (uvicorn closes idle connections after 5 s)
IDLE_CONNECTION_S = 2.0
MISSING_DOMAIN_STATUS = 449


class _KeptSession:
    """``async with`` yields the shared session and leaves it open."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self.session

    async def __aexit__(self, *exc_info: Any) -> None:
        return None


_sessions: Dict[Tuple[Any, ...], aiohttp.ClientSession] = {}


def _session_key(endpoint: Any) -> Tuple[Any, ...]:
    auth = endpoint.basic_auth or {}
    return (id(asyncio.get_running_loop()), tuple(sorted((endpoint.headers or {}).items())),
            auth.get("username"), auth.get("password"))


def kept_session(endpoint: Any) -> _KeptSession:
    """The open session for ``endpoint``'s headers and credentials on the running event loop."""
    key = _session_key(endpoint)
    session = _sessions.get(key)
    if session is None or session.closed:
        from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT

        auth = endpoint.basic_auth
        session = aiohttp.ClientSession(
            headers=endpoint.headers,
            auth=aiohttp.BasicAuth(auth["username"], auth["password"]) if auth else None,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(keepalive_timeout=IDLE_CONNECTION_S),
        )
        _sessions[key] = session
    return _KeptSession(session)


async def close_kept_sessions() -> None:
    """Close the sessions opened on the running event loop (the server's ``after_server_stop``)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _sessions if key[0] == loop_id]:
        await _sessions.pop(key).close()


def install_kept_alive_sessions() -> None:
    import rasa.core.run
    from rasa.utils.endpoints import EndpointConfig

    EndpointConfig.session = kept_session
    close_resources = rasa.core.run.close_resources

    async def close_resources_and_sessions(app: Any, loop: Any) -> None:
        try:
            await close_resources(app, loop)
        finally:
            await close_kept_sessions()

    rasa.core.run.close_resources = close_resources_and_sessions


class DomainDigests:
    """The digest of a domain (computed once per domain object), and which digest each action server holds."""

    def __init__(self) -> None:
        self._last: Optional[Tuple[Any, Text]] = None
        self.held: Dict[Text, Text] = {}  # action endpoint URL -> digest of the domain it has accepted

    def digest(self, domain: Any) -> Text:
        if self._last is None or self._last[0] is not domain:
            self._last = (domain, domain.fingerprint())
        return self._last[1]


digests = DomainDigests()


def install_domain_digest() -> None:
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.exceptions import RasaException
    from rasa.utils.endpoints import ClientResponseError

    call_format = RemoteAction._action_call_format
    run = RemoteAction.run

    def _action_call_format(self: RemoteAction, tracker: Any, domain: Any) -> Dict[Text, Any]:
        body = call_format(self, tracker, domain)
        digest = digests.digest(domain)
        body["domain_digest"] = digest
        url = self.action_endpoint.url if self.action_endpoint else None
        if digests.held.get(url) != digest:
            body["domain"] = domain.as_dict()
        else:  # rasa_sdk hands its cached domain to every action, forms' validate_* actions included
            body.pop("domain", None)
        return body

    async def run_with_digest(self: RemoteAction, output_channel: Any, nlg: Any, tracker: Any,
                              domain: Any) -> List[Any]:
        url = self.action_endpoint.url if self.action_endpoint else None
        try:
            events = await run(self, output_channel, nlg, tracker, domain)
        except RasaException as e:
            cause = e.__cause__
            if not (isinstance(cause, ClientResponseError) and cause.status == MISSING_DOMAIN_STATUS):
                raise
            digests.held.pop(url, None)  # the action server does not have it (any more): send it this time
            events = await run(self, output_channel, nlg, tracker, domain)
        if url is not None:
            digests.held[url] = digests.digest(domain)
        return events

    RemoteAction._action_call_format = _action_call_format
    RemoteAction.run = run_with_digest
