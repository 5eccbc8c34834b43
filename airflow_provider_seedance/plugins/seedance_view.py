"""The Seedance page of the Airflow UI: a gallery of generated videos and what they cost.

Why this shape (Airflow 3.1 to 3.3):

* **A FastAPI app in** ``fastapi_apps``, mounted by the API server at ``/seedance``. It runs
  in the API server process, next to the metadata DB and the auth manager, so it reads what
  Airflow already stores (task instances, XComs, rendered fields) and checks permissions
  with the same auth manager calls the core API uses. 3.1, 3.2 and 3.3 mount it identically.
* **An** ``external_views`` **entry** with ``url_route`` puts *Seedance* in the UI's navigation
  and shows the page inside the UI (an iframe at ``/plugin/seedance``); a second entry adds a
  *Seedance* tab to each DAG (``destination="dag"``, ``?dag_id={DAG_ID}``). A ``react_apps``
  entry would need a JS bundle built against the UI's React version (and React apps are still
  marked experimental); Flask ``appbuilder_views`` need the FAB provider. An iframe of plain
  HTML needs neither, and works with every auth manager.
* The page is a static shell plus JSON endpoints rendered by a small script, because Airflow
  3.1's UI keeps the JWT in local storage (sent as a ``Bearer`` header) while 3.2+ use an
  httpOnly ``_token`` cookie: a script can send either; a server-rendered page would only see
  the cookie. The spend chart is SVG rendered on the server.

Endpoints (all under ``/seedance``): ``/`` (the page), ``/api/generations``, ``/api/dags``,
``/api/spend`` (JSON), ``/api/spend.svg``, ``/media/{token}`` (a delivered file, see
:mod:`.access` and :mod:`.media`) and ``POST /callbacks/{token}`` (Seedance callbacks, see
:mod:`.callback_receiver`; the one route meant to be public).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from airflow_provider_seedance.hooks.per_loop import PerLoop
from airflow_provider_seedance.plugins import access, callback_receiver, media, queries, records
from airflow_provider_seedance.plugins.charts import spend_svg

if TYPE_CHECKING:
    from collections.abc import Iterator

MOUNT = "/seedance"
DEFAULT_SPEND_DAYS = 30
MAX_SPEND_DAYS = 366
NO_STORE = {"Cache-Control": "no-store"}
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' http: https:; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
}


@cache
def _asset(folder: str, name: str) -> str:
    return (resources.files("airflow_provider_seedance.plugins") / folder / name).read_text("utf-8")


# --------------------------------------------------------------------------- dependencies


async def current_user(request: Request) -> Any:
    """The Airflow user behind the request's JWT (``Bearer`` header or ``_token`` cookie)."""
    from airflow.api_fastapi.app import get_auth_manager
    from jwt import ExpiredSignatureError, InvalidTokenError

    token = access.token_from_request(request.headers.get("authorization"), dict(request.cookies))
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated")
    try:
        return await get_auth_manager().get_user_from_token(token)
    except ExpiredSignatureError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Token expired") from None
    except InvalidTokenError:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Invalid JWT token") from None


def readable_dags(user: Annotated[Any, Depends(current_user)]) -> frozenset[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return access.readable_dag_ids(get_auth_manager(), user)


def db_session() -> Iterator[Session]:
    """A session of this request's own. Not Airflow's thread-scoped one: FastAPI runs a
    dependency and its endpoint on pool threads that need not be the same, so a thread's session
    could serve two requests at once (as Airflow's own API does: ``scoped=False``)."""
    from airflow.utils.session import create_session

    with create_session(scoped=False) as session:
        yield session


Readable = Annotated[frozenset[str], Depends(readable_dags)]
DbSession = Annotated[Session, Depends(db_session)]


def _filter(
    dag_ids: frozenset[str],
    dag_id: str | None,
    since: date | None,
    until: date | None,
    state: str | None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
) -> queries.GenerationFilter:
    try:
        return queries.GenerationFilter(
            dag_ids=dag_ids,
            dag_id=dag_id or None,
            since=since,
            until=until,
            status=state or None,
            operators=queries.operator_names(),
            run_id=run_id or None,
            task_id=task_id or None,
            map_index=map_index,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def ui_root(request: Request) -> str:
    """The Airflow UI's root path (``[api] base_url``'s path), from where this app is mounted."""
    root = str(request.scope.get("root_path") or "")
    return root[: -len(MOUNT)] if root.endswith(MOUNT) else root


def ui_links(root: str, item: dict[str, Any]) -> dict[str, str]:
    dag, run, task = (quote(str(item[k]), safe="") for k in ("dag_id", "run_id", "task_id"))
    run_url = f"{root}/dags/{dag}/runs/{run}"
    ti_url = f"{run_url}/tasks/{task}"
    if int(item.get("map_index", -1)) >= 0:
        ti_url += f"/mapped/{int(item['map_index'])}"
    return {"dag_run": run_url, "task_instance": ti_url}


# --------------------------------------------------------------------------- the app

app = FastAPI(
    title="Seedance view",
    description="Gallery and spend of Seedance generations recorded by Airflow tasks.",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


@app.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The page shell (no data; everything it shows comes from the authorized endpoints)."""
    return HTMLResponse(_asset("templates", "gallery.html"), headers=PAGE_HEADERS)


@app.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    types = {"gallery.js": "text/javascript", "gallery.css": "text/css"}
    if name not in types:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not found")
    return Response(_asset("static", name), media_type=types[name], headers={"Cache-Control": "no-cache"})


@app.get("/api/generations")
def generations(
    request: Request,
    readable: Readable,
    session: DbSession,
    dag_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    state: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 24,
    offset: Annotated[int, Query(ge=0)] = 0,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
) -> JSONResponse:
    """Newest first, a card per generation (per batch item); ``links`` into the UI, ``media_url``.

    ``dag_id`` + ``run_id`` + ``task_id`` (+ ``map_index``) is the extra link's card route: that
    task instance's card(s) whatever its state, so a valid task instance is never an empty page.
    """
    flt = _filter(readable, dag_id, since, until, state, run_id, task_id, map_index)
    page = queries.list_generations(session, flt, limit=limit, offset=offset)
    root = ui_root(request)
    items = []
    for item in page.items:
        item["links"] = ui_links(root, item)
        item["media_url"] = None
        if item["output_path"] and media.local_path(item["output_path"]) is not None:
            key = (item["dag_id"], item["run_id"], item["task_id"], int(item["map_index"]))
            item["media_url"] = f"{root}{MOUNT}/media/{access.sign_media(key, item=item['item'])}"
        items.append(item)
    body = {
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "skipped_records": page.skipped_records,
        "items": items,
    }
    return JSONResponse(body, headers=NO_STORE)


@app.get("/api/dags")
def dags(readable: Readable, session: DbSession) -> JSONResponse:
    """The readable DAGs that have generations (the DAG filter's options)."""
    dag_ids = queries.dags_with_generations(session, readable, queries.operator_names())
    return JSONResponse({"dag_ids": dag_ids}, headers=NO_STORE)


def _spend_range(since: date | None, until: date | None) -> tuple[date, date]:
    until = until or datetime.now(timezone.utc).date()
    since = since or until - timedelta(days=DEFAULT_SPEND_DAYS - 1)
    if (until - since).days >= MAX_SPEND_DAYS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"choose at most {MAX_SPEND_DAYS} days")
    return since, until


def spend_report(
    readable: Readable,
    session: DbSession,
    dag_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """The spend of the readable DAGs; a dependency, so its query parameters are declared once."""
    since, until = _spend_range(since, until)
    return queries.spend(session, _filter(readable, dag_id, since, until, None))


SpendReport = Annotated[dict[str, Any], Depends(spend_report)]


@app.get("/api/spend")
def spend_json(report: SpendReport) -> JSONResponse:
    """Credits and dollars per day and per DAG (default: the last 30 days, UTC)."""
    return JSONResponse(report, headers=NO_STORE)


@app.get("/api/spend.svg")
def spend_chart(report: SpendReport) -> Response:
    return Response(spend_svg(report), media_type="image/svg+xml", headers=NO_STORE)


@app.get("/media/{token}")
def delivered_video(token: str, session: DbSession) -> Response:
    """A delivered file named by a signed task-instance token (see :mod:`.access`)."""
    named = access.read_media_token(token)
    if named is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Invalid or expired media token")
    dag_id, run_id, task_id, map_index, position = named
    key = (dag_id, run_id, task_id, map_index)
    item = None if position < 0 else position
    record = queries.find_record(session, key, queries.operator_names())
    result = None
    if record is not None:
        for index, found_result in records.read_results(
            record.xcoms, record.state, None if item is None else slice(item, item + 1)
        ):
            if index == item and found_result is not None:
                result = found_result
    if result is None or result.output_path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No delivered video recorded for this task")
    if record is None or not media.rendered_names(result.output_path, record.rendered, item):
        # The recorded path is not the one the task rendered: an edited XCom, never served.
        raise HTTPException(status.HTTP_404_NOT_FOUND, "The recorded video is not the one this task rendered")
    found = media.servable_video(result.output_path, result.bytes, access.allowed_roots())
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "The recorded video is not available here")
    path, content_type = found
    # FileResponse answers Range requests (206) itself: seeking works in every browser.
    return FileResponse(path, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"})


# --------------------------------------------------------------------------- callbacks

_CALLBACK_ANSWERS = {
    callback_receiver.Outcome.REFUSED: status.HTTP_403_FORBIDDEN,
    callback_receiver.Outcome.IGNORED: status.HTTP_202_ACCEPTED,
    callback_receiver.Outcome.RESUMED: status.HTTP_200_OK,
    callback_receiver.Outcome.ENDED: status.HTTP_200_OK,
    callback_receiver.Outcome.RECORDED: status.HTTP_200_OK,
    callback_receiver.Outcome.UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
}


#: Callbacks handled at once, each in a thread of its own limiter (one may hold its thread for
#: seconds: a status read, the wait for a deferral). More at once wait for a slot without a
#: thread, so no caller can take the threads Airflow's own routes share (the workers' heartbeats
#: among them).
CALLBACK_CONCURRENCY = 4
#: A callback that finds every slot busy waits (on the event loop, holding no thread) up to this
#: long for one, so a burst of generations ending together is not turned away (a fire-and-forget
#: generation has no fallback poll); at most this many wait at once, more get 503 straight away.
CALLBACK_QUEUE_SECONDS = 20.0
CALLBACK_QUEUE_LIMIT = 64
_CALLBACK_SLOTS: PerLoop[str, Any] = PerLoop()


async def _slot_freed(slots: anyio.CapacityLimiter, waiting: list[int]) -> bool:
    """Wait for a free slot, at most :data:`CALLBACK_QUEUE_SECONDS`; ``False``: none came, or the
    queue is full."""
    if waiting[0] >= CALLBACK_QUEUE_LIMIT:
        return False
    waiting[0] += 1
    try:
        deadline = anyio.current_time() + CALLBACK_QUEUE_SECONDS
        while slots.available_tokens < 1:
            if anyio.current_time() >= deadline:
                return False
            await anyio.sleep(0.05)
        return True
    finally:
        waiting[0] -= 1


async def _body_within_cap(request: Request, cap: int) -> bool:
    """Read (and drop) the body, stopping as soon as it is longer than ``cap`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        return False
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return False
    return True


@app.post("/callbacks/{token}", include_in_schema=False)
async def seedance_callback(token: str, request: Request) -> JSONResponse:
    """A Seedance callback (see :mod:`.callback_receiver`): no Airflow login, the token alone.

    The body is only a hint that something happened and is not read beyond its size cap.
    """
    if not await _body_within_cap(request, callback_receiver.MAX_CALLBACK_BODY):
        return JSONResponse({"status": "too large"}, 413, headers=NO_STORE)

    state = _CALLBACK_SLOTS.here()
    slots = state.setdefault("slots", anyio.CapacityLimiter(CALLBACK_CONCURRENCY))
    if slots.available_tokens < 1 and not await _slot_freed(slots, state.setdefault("waiting", [0])):
        # Every slot stayed busy (a flood, or slow status reads), or too many wait already.
        return JSONResponse({"status": "busy"}, status.HTTP_503_SERVICE_UNAVAILABLE, headers=NO_STORE)

    def handle() -> callback_receiver.Outcome:
        from airflow.utils.session import create_session

        with create_session(scoped=False) as session:  # as db_session: this call's own
            return callback_receiver.receive(token, session)

    outcome = await anyio.to_thread.run_sync(handle, limiter=slots)
    return JSONResponse({"status": outcome.value}, _CALLBACK_ANSWERS[outcome], headers=NO_STORE)


# --------------------------------------------------------------------------- the plugin


def _plugin_base() -> type:
    from airflow.plugins_manager import AirflowPlugin

    return AirflowPlugin


class SeedancePlugin(_plugin_base()):  # type: ignore[misc]
    """Registered through the ``airflow.plugins`` entry point of this distribution."""

    name = "seedance"
    fastapi_apps = [{"app": app, "url_prefix": MOUNT, "name": "Seedance gallery and spend"}]
    external_views = [
        {
            "name": "Seedance",
            "href": f"{MOUNT}/",
            "url_route": "seedance",
            "destination": "nav",
            "nav_top_level": True,  # 3.3: its own item in the side bar; 3.1: under "Plugins"
        },
        {
            "name": "Seedance",
            "href": f"{MOUNT}/?dag_id={{DAG_ID}}",
            "url_route": "seedance-dag",
            "destination": "dag",
        },
    ]


__all__ = ["MOUNT", "SeedancePlugin", "app"]
