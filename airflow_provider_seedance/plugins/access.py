"""Who is asking, which DAGs they may read, and signed references to delivered video files.

Identity is Airflow's: the JWT the UI holds (the ``_token`` cookie on Airflow 3.2+, a
``Bearer`` header from the page's script on 3.1, whose UI keeps the token in local storage),
checked by the configured auth manager (``get_user_from_token``) exactly as the core API does.

Authorization mirrors the core XCom routes: the DAGs the auth manager says the user may read
(``get_authorized_dag_ids(method="GET")``, the same call behind ``ReadableDagsFilterDep``),
narrowed to those whose XComs the user may read (``is_authorized_dag`` with
``DagAccessEntity.XCOM``, what ``requires_access_dag("GET", DagAccessEntity.XCOM)`` checks).

A ``<video>`` element cannot send a ``Bearer`` header, so delivered files are fetched through
*media tokens*: the gallery endpoint, after the checks above, signs the identity of the task
instance and batch item (never a path) with the API server's ``[api] secret_key``; the media
endpoint takes the ``output_path`` from that task instance's recorded result and serves it
only if the task's *rendered* fields name it (:func:`.media.rendered_names`). A request can
name no path at all, and a token expires (``MEDIA_TOKEN_MAX_AGE``).
"""

from __future__ import annotations

from typing import Any, Protocol

#: Seconds a media token stays valid (the page refreshes its list long before that).
MEDIA_TOKEN_MAX_AGE = 6 * 3600
_MEDIA_SALT = "airflow-provider-seedance.media"
COOKIE_NAME = "_token"


class DagAuthManager(Protocol):
    """The part of Airflow's ``BaseAuthManager`` the view uses (a stub can stand in for it)."""

    def get_authorized_dag_ids(self, *, user: Any, method: Any = "GET") -> set[str]: ...

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool: ...


def readable_dag_ids(auth_manager: DagAuthManager, user: Any) -> frozenset[str]:
    """DAG ids whose runs and XComs ``user`` may read: the only DAGs the view shows."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    readable = auth_manager.get_authorized_dag_ids(user=user, method="GET")
    return frozenset(
        dag_id
        for dag_id in readable
        if auth_manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.XCOM, details=DagDetails(id=dag_id), user=user
        )
    )


def token_from_request(authorization: str | None, cookies: dict[str, str]) -> str | None:
    """An explicit ``Bearer`` header wins over the session cookie (as in the core API)."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return cookies.get(COOKIE_NAME) or None


def _serializer(secret_key: str | None = None) -> Any:
    from itsdangerous import URLSafeTimedSerializer

    if secret_key is None:
        from airflow.api_fastapi.auth.tokens import get_signing_key

        secret_key = get_signing_key("api", "secret_key")
    return URLSafeTimedSerializer(secret_key, salt=_MEDIA_SALT)


MediaKey = tuple[str, str, str, int, int]


def sign_media(key: tuple[str, str, str, int], secret_key: str | None = None, item: int | None = None) -> str:
    """A token naming one task instance (dag_id, run_id, task_id, map_index) and batch item."""
    return str(_serializer(secret_key).dumps([*key, -1 if item is None else item]))


def read_media_token(
    token: str, secret_key: str | None = None, max_age: int = MEDIA_TOKEN_MAX_AGE
) -> MediaKey | None:
    """The task instance and item (-1: not a batch item) a valid, unexpired token names."""
    from itsdangerous import BadSignature

    try:
        raw = _serializer(secret_key).loads(token, max_age=max_age)
    except BadSignature:  # SignatureExpired is a BadSignature
        return None
    if (
        not isinstance(raw, list)
        or len(raw) != 5
        or not all(isinstance(part, str) for part in raw[:3])
        or not all(isinstance(part, int) and not isinstance(part, bool) for part in raw[3:])
    ):
        return None
    return raw[0], raw[1], raw[2], raw[3], raw[4]


def allowed_roots() -> list[str]:
    """``[seedance] gallery_media_roots``: if set, only files under these directories are served."""
    from airflow.configuration import conf

    value = conf.get("seedance", "gallery_media_roots", fallback="") or ""
    return [root.strip() for root in value.split(",") if root.strip()]


__all__ = [
    "MEDIA_TOKEN_MAX_AGE",
    "DagAuthManager",
    "MediaKey",
    "read_media_token",
    "readable_dag_ids",
    "sign_media",
    "token_from_request",
]
