"""``/admin/*``: cluster statistics and the rules document, answered through the coordinator.

Every action that concerns the whole cluster is the coordinator's: a worker
only relays it (:meth:`StatsSource.admin`) and renders the answer, so any worker
can take an admin request and all of them see the result. With an admin token
set, every admin route needs ``Authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
import yaml

from sim import openai_wire
from sim.errors import ApiError
from sim.ratelimit import Ask, LeaseAnswer
from workers.http import MethodNotAllowed, Receive, Reply, Scope, read_body

ADMIN_TIMEOUT_S = 2.0


class StatsSource(Protocol):
    """What the app needs from the coordinator link."""

    @property
    def connected(self) -> bool: ...

    async def query_stats(self, *, timeout_s: float) -> dict[str, Any] | None: ...

    async def admin(self, action: str, payload: dict[str, Any], *, timeout_s: float) -> dict[str, Any] | None: ...

    async def query_metrics(self, *, timeout_s: float) -> dict[str, Any] | None: ...

    async def lease(self, asks: Sequence[Ask], *, timeout_s: float) -> LeaseAnswer | None: ...

    def give_back(self, returns: list[tuple[str, float]]) -> None: ...


AdminHandler = Callable[[bytes], Awaitable[Reply]]


class Admin:
    def __init__(self, link: StatsSource, *, token: str | None, max_body_bytes: int) -> None:
        self._link = link
        self._token = f"Bearer {token}".encode() if token else None
        self._max_body_bytes = max_body_bytes
        self._routes: Mapping[str, Mapping[str, AdminHandler]] = {
            "/admin/stats": {"GET": self._stats},
            "/admin/stats/reset": {"POST": self._reset_stats},
            "/admin/rules": {"GET": self._get_rules, "PUT": self._put_rules},
        }

    async def handle(self, scope: Scope, receive: Receive, method: str, path: str) -> Reply:
        try:
            self._authorize(scope)
            methods = self._routes.get(path)
            if methods is None:
                raise ApiError(404, f"Invalid URL ({method} {path})", code="unknown_url")
            handler = methods.get(method)
            if handler is None:
                raise MethodNotAllowed(method, path, methods)
            body = await read_body(scope, receive, self._max_body_bytes) if method in ("POST", "PUT") else b""
            return await handler(body)
        except ApiError as error:
            return Reply(error.status, openai_wire.error_body(error), headers=error.headers)

    def _authorize(self, scope: Scope) -> None:
        if self._token is None:
            return
        given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if not hmac.compare_digest(given, self._token):
            raise ApiError(
                401, "The admin API needs 'Authorization: Bearer <admin token>'.", error_type="invalid_api_key"
            )

    async def _ask(self, action: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self._link.admin(action, payload or {}, timeout_s=ADMIN_TIMEOUT_S)
        if result is None:
            raise _coordinator_silent()
        return result

    async def _stats(self, body: bytes) -> Reply:
        stats = await self._link.query_stats(timeout_s=ADMIN_TIMEOUT_S)
        if stats is None:
            raise _coordinator_silent()
        return Reply(200, orjson.dumps(stats))

    async def _reset_stats(self, body: bytes) -> Reply:
        return Reply(200, orjson.dumps(await self._ask("reset_stats")))

    async def _get_rules(self, body: bytes) -> Reply:
        result = await self._ask("get_rules")
        return Reply(200, orjson.dumps({"version": result.get("version"), "mocker": result.get("document")}))

    async def _put_rules(self, body: bytes) -> Reply:
        try:
            document = yaml.safe_load(body) if body.strip() else None  # YAML is a superset of JSON
        except yaml.YAMLError as error:
            raise ApiError(400, f"The rules document is not valid YAML or JSON: {error}") from error
        if isinstance(document, dict) and set(document) == {"mocker"}:
            document = document["mocker"]  # a whole config file's section, or the section alone
        result = await self._ask("put_rules", {"document": document})
        if not result.get("ok"):
            errors = [str(e) for e in result.get("errors", [])]
            body_out = {
                "error": {
                    "message": "; ".join(errors),
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_rules",
                },
                "errors": errors,
                "version": result.get("version"),
            }
            return Reply(400, orjson.dumps(body_out))
        return Reply(200, orjson.dumps({"version": result["version"]}))


def _coordinator_silent() -> ApiError:
    return ApiError(503, "The coordinator did not answer; cluster state is unavailable.", error_type="server_error")
