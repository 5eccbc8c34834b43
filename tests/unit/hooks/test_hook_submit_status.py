"""SeedanceHook.submit_request / get_status against a scripted transport (no server).

A narrow fake: a ``requests`` adapter mounted on the hook's session answers each request
from a script (an HTTP answer, or a ``requests`` exception raised where the network would
raise it) and records what was sent. Everything above the adapter is the real hook: its
session call, the transport's answer rules and the retry policy. What the server received
over real HTTP is proven in tests/integration; these pin each branch of the money rules:

* the generate POST is sent once, and again only when it provably never left (NOT_SENT);
* a 4xx is a refusal (nothing created), any other failure "may exist" and is never resent;
* a status read returns the task or a typed error, never a ``KeyError``.
"""

from __future__ import annotations

import io
import json
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import MaxRetryError, NewConnectionError

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAuthError,
    SeedanceBadRequestError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceInsufficientCreditsError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceValidationError,
    never_created,
)
from airflow_provider_seedance.hooks.seedance import ConnectionSettings, SeedanceHook
from airflow_provider_seedance.models import GenerationRequest, TaskStatus

BASE = "https://seedance.fake.test"
PROXY = "http://proxy.fake.test:3128"


class Answer:
    """One scripted HTTP answer."""

    def __init__(self, status: int, body: Any = b"", headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = dict(headers or {})


class ScriptedAdapter(BaseAdapter):
    """Answers each request with the next scripted step; the last step repeats."""

    def __init__(self, steps: Iterable[Answer | BaseException]) -> None:
        super().__init__()
        self.steps = deque(steps)
        self.sent: list[requests.PreparedRequest] = []
        self.kwargs: list[dict[str, Any]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        self.kwargs.append(kwargs)
        step = self.steps.popleft() if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, BaseException):
            raise step
        response = requests.Response()
        response.status_code = step.status
        response.raw = io.BytesIO(step.body)
        response.headers = CaseInsensitiveDict(step.headers)
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass

    def posts(self) -> list[requests.PreparedRequest]:
        return [r for r in self.sent if r.method == "POST"]


def make_hook(
    *steps: Answer | BaseException, proxy: str | None = None
) -> tuple[SeedanceHook, ScriptedAdapter]:
    hook = SeedanceHook("seedance_fake", status_retries=3, retry_min_wait=0.0, retry_max_wait=0.0)
    settings = ConnectionSettings(BASE, "sk-secret", connect_timeout=2.0, read_timeout=7.0, proxy=proxy)
    session = requests.Session()
    adapter = ScriptedAdapter(steps)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # the hook's cached properties: its resolved connection and its session
    hook.__dict__["settings"] = settings
    hook.__dict__["_session"] = session
    return hook, adapter


def refused() -> requests.exceptions.ConnectionError:
    """What requests raises when the TCP connection was refused: nothing left this machine."""
    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/v1/generate", cause))  # type: ignore[arg-type]


def dropped() -> requests.exceptions.ConnectionError:
    """What requests raises when the server closed the connection after the request went out."""
    return requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")


REQUEST = GenerationRequest.from_mapping({"prompt": "a red fox in snow", "resolution": "480p", "duration": 4})


def accepted(task_id: str = "gen-42") -> Answer:
    return Answer(200, {"code": 200, "message": "ok", "data": {"task_id": task_id, "status": "IN_PROGRESS"}})


def status_body(**data: Any) -> Answer:
    return Answer(200, {"code": 200, "message": "ok", "data": data})


# ----------------------------------------------------------------------------- submit
def test_an_accepted_generate_post_returns_the_task_id_and_is_sent_once_with_the_request() -> None:
    hook, adapter = make_hook(accepted(" gen-42 "))

    assert hook.submit_request(REQUEST) == "gen-42"

    assert len(adapter.sent) == 1
    post = adapter.sent[0]
    assert post.method == "POST"
    assert post.url == f"{BASE}/v1/generate"
    assert json.loads(post.body or b"{}") == REQUEST.to_payload()


def test_a_callback_url_given_beside_the_request_is_sent_without_changing_the_request() -> None:
    hook, adapter = make_hook(accepted())
    fingerprint = REQUEST.fingerprint()

    hook.submit_request(REQUEST, callback_url="https://af.example.com/seedance/callbacks/tok")

    sent = json.loads(adapter.posts()[0].body or b"{}")
    assert sent == {**REQUEST.to_payload(), "callback_url": "https://af.example.com/seedance/callbacks/tok"}
    assert REQUEST.fingerprint() == fingerprint and REQUEST.callback_url is None


def test_a_callback_url_of_the_request_itself_wins_over_the_one_given_beside_it() -> None:
    hook, adapter = make_hook(accepted())
    own = GenerationRequest.from_mapping(
        {"prompt": "a fox", "callback_url": "https://hooks.example.org/mine"}
    )

    hook.submit_request(own, callback_url="https://af.example.com/seedance/callbacks/tok")

    assert json.loads(adapter.posts()[0].body or b"{}")["callback_url"] == "https://hooks.example.org/mine"


def test_the_generate_post_uses_the_connection_timeouts_and_proxy_and_streams_the_answer() -> None:
    hook, adapter = make_hook(accepted(), proxy=PROXY)

    hook.submit_request(REQUEST)

    kwargs = adapter.kwargs[0]
    assert kwargs["timeout"] == (2.0, 7.0)
    assert kwargs["proxies"]["https"] == PROXY
    assert kwargs["stream"] is True


def test_a_redirect_answer_to_the_generate_post_is_not_followed_and_may_have_created() -> None:
    hook, adapter = make_hook(Answer(307, b"", {"Location": f"{BASE}/elsewhere"}), accepted())

    with pytest.raises(SeedanceSubmissionUncertainError) as info:
        hook.submit_request(REQUEST)

    assert len(adapter.sent) == 1, "a redirect must not send the paid POST a second time"
    assert info.value.creation is CreationState.MAY_EXIST


@pytest.mark.parametrize(
    "data",
    [{"status": "IN_PROGRESS"}, {"task_id": ""}, {"task_id": "   "}, {"task_id": 17}],
    ids=["no-id", "empty-id", "blank-id", "non-string-id"],
)
def test_a_2xx_without_a_task_id_may_have_created_a_generation_and_is_not_resent(data: Any) -> None:
    hook, adapter = make_hook(Answer(200, {"code": 200, "message": "ok", "data": data}), accepted())

    with pytest.raises(SeedanceSubmissionUncertainError) as info:
        hook.submit_request(REQUEST)

    assert info.value.creation is CreationState.MAY_EXIST and not never_created(info.value)
    assert len(adapter.posts()) == 1


@pytest.mark.parametrize(
    ("status", "body", "error_class", "retryable"),
    [
        (400, {"code": 400, "message": "INVALID_PROMPT: prompt too long"}, SeedanceBadRequestError, False),
        (401, {"code": 401, "message": "INVALID_API_KEY: bad key"}, SeedanceAuthError, False),
        (
            402,
            {"code": 402, "message": "INSUFFICIENT_CREDITS: top up"},
            SeedanceInsufficientCreditsError,
            False,
        ),
        (429, {"code": 429, "message": "RATE_LIMITED: slow down"}, SeedanceError, True),
    ],
)
def test_a_4xx_to_the_generate_post_is_a_typed_refusal_that_created_nothing_and_is_not_resent(
    status: int, body: Any, error_class: type[SeedanceError], retryable: bool
) -> None:
    hook, adapter = make_hook(Answer(status, body), accepted())

    with pytest.raises(error_class) as info:
        hook.submit_request(REQUEST)

    err = info.value
    assert err.creation is CreationState.REFUSED and never_created(err)
    assert getattr(err, "status_code", None) == status
    assert getattr(err, "endpoint", None) == "POST /v1/generate"
    assert err.retryable is retryable
    assert len(adapter.posts()) == 1, "the hook never resends; the operator's policy decides"


def test_a_refusal_names_the_field_the_server_rejected() -> None:
    body = {"code": 400, "message": "INVALID_PROMPT: prompt must not be empty"}
    hook, _ = make_hook(Answer(400, body))

    with pytest.raises(SeedanceBadRequestError) as info:
        hook.submit_request(REQUEST)

    assert info.value.error_code == "INVALID_PROMPT"
    assert "prompt must not be empty" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(
    "body",
    [
        {"code": 500, "message": "INTERNAL_ERROR: oops"},
        {"code": 400, "message": "INVALID_PROMPT: a 4xx code in a 5xx body"},
        b"<html>Bad Gateway</html>",
        b"",
    ],
    ids=["internal", "4xx-code-in-body", "html", "empty"],
)
def test_a_5xx_of_any_body_may_have_created_a_generation_and_is_never_resent(status: int, body: Any) -> None:
    hook, adapter = make_hook(Answer(status, body), accepted())

    with pytest.raises(SeedanceSubmissionUncertainError) as info:
        hook.submit_request(REQUEST)

    assert info.value.creation is CreationState.MAY_EXIST and not never_created(info.value)
    assert len(adapter.posts()) == 1


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ReadTimeout("read timed out"), dropped()],
    ids=["read-timeout", "dropped-after-send"],
)
def test_no_answer_after_the_post_was_sent_may_have_created_and_is_never_resent(
    failure: BaseException,
) -> None:
    hook, adapter = make_hook(failure, accepted())

    with pytest.raises(SeedanceSubmissionUncertainError) as info:
        hook.submit_request(REQUEST)

    assert info.value.creation is CreationState.MAY_EXIST and not never_created(info.value)
    assert len(adapter.posts()) == 1


def test_a_refused_connection_sent_nothing_and_the_post_is_tried_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook, adapter = make_hook(refused(), accepted("gen-7"))

    assert hook.submit_request(REQUEST) == "gen-7"

    assert len(adapter.posts()) == 2
    # the task log tells a person the retry cost nothing (Airflow's logging prints to stdout)
    captured = capsys.readouterr()
    retry_lines = [line for line in (captured.out + captured.err).splitlines() if "retrying in" in line]
    assert len(retry_lines) == 1
    assert "nothing sent yet" in retry_lines[0] and "attempt 1 of 3" in retry_lines[0]


def test_a_connection_refused_every_time_gives_up_after_three_attempts_saying_nothing_was_sent() -> None:
    hook, adapter = make_hook(refused())

    with pytest.raises(SeedanceConnectionError) as info:
        hook.submit_request(REQUEST)

    assert info.value.creation is CreationState.NOT_SENT and never_created(info.value)
    assert len(adapter.posts()) == 3


def test_a_connect_timeout_sent_nothing_and_the_post_is_tried_again() -> None:
    hook, adapter = make_hook(requests.exceptions.ConnectTimeout("connect timed out"), accepted("gen-9"))

    assert hook.submit_request(REQUEST) == "gen-9"
    assert len(adapter.posts()) == 2


def test_submit_with_fields_validates_before_anything_is_sent() -> None:
    hook, adapter = make_hook(accepted())

    with pytest.raises(SeedanceValidationError) as info:
        hook.submit("a fox", resolution="4k")

    assert info.value.field == "resolution"
    assert adapter.sent == []


# ----------------------------------------------------------------------------- status
@pytest.mark.parametrize("status", ["IN_PROGRESS", "SUCCESS", "FAILED", "QUEUED"])
def test_a_status_read_returns_the_task_in_each_status(status: str) -> None:
    body = status_body(
        task_id="gen-1",
        status=status.lower(),
        response=["https://cdn.fake.test/v.mp4"] if status == "SUCCESS" else [],
        consumed_credits=8 if status == "SUCCESS" else 0,
        error_message="moderation" if status == "FAILED" else None,
    )
    hook, adapter = make_hook(body)

    task = hook.get_status(" gen-1 ")

    assert task.task_id == "gen-1" and task.status == status
    assert task.is_terminal is (status in TaskStatus.TERMINAL)
    assert task.video_url == ("https://cdn.fake.test/v.mp4" if status == "SUCCESS" else None)
    assert task.error_message == ("moderation" if status == "FAILED" else None)
    (read,) = adapter.sent
    assert read.method == "GET"
    assert read.url == f"{BASE}/v1/status?task_id=gen-1"


@pytest.mark.parametrize("task_id", ["", "   ", None, 42])
def test_a_status_read_of_no_task_id_is_refused_before_any_request(task_id: Any) -> None:
    hook, adapter = make_hook(status_body(task_id="x", status="SUCCESS"))

    with pytest.raises(SeedanceValidationError) as info:
        hook.get_status(task_id)

    assert info.value.field == "seedance_task_id"
    assert adapter.sent == []


@pytest.mark.parametrize(
    "answer",
    [
        Answer(200, b"not json"),
        Answer(200, b"<html>login</html>"),
        Answer(200, b""),
        Answer(200, [1, 2]),
        Answer(200, {"code": 200, "message": "ok"}),
        Answer(200, {"code": 200, "data": {"status": "SUCCESS"}}),
        Answer(200, {"code": 200, "data": {"task_id": "gen-1"}}),
        Answer(200, {"code": 200, "data": {"task_id": "gen-1", "status": 3}}),
    ],
    ids=["text", "html", "empty", "list", "no-data", "no-task-id", "no-status", "status-not-a-string"],
)
def test_a_malformed_status_answer_is_a_typed_error_never_a_key_error(answer: Answer) -> None:
    hook, _ = make_hook(answer)

    with pytest.raises(SeedanceResponseError) as info:
        hook.get_status("gen-1")

    assert info.value.error_code == "MALFORMED_RESPONSE"


def test_a_transient_status_failure_is_retried_until_the_task_is_read() -> None:
    hook, adapter = make_hook(
        Answer(503, {"code": 503, "message": "INTERNAL_ERROR: busy"}),
        Answer(200, b"garbage"),
        status_body(task_id="gen-1", status="SUCCESS", response="https://cdn.fake.test/v.mp4"),
    )

    task = hook.get_status("gen-1")

    assert task.status == TaskStatus.SUCCESS
    assert len(adapter.sent) == 3


def test_a_status_read_stops_after_status_retries_attempts_and_raises_the_last_failure() -> None:
    hook, adapter = make_hook(Answer(503, {"code": 503, "message": "INTERNAL_ERROR: busy"}))

    with pytest.raises(SeedanceServerError):
        hook.get_status("gen-1")

    assert len(adapter.sent) == 3  # status_retries=3


@pytest.mark.parametrize(
    ("answer", "error_class"),
    [
        (Answer(404, {"code": 404, "message": "TASK_NOT_FOUND: no such task"}), SeedanceTaskNotFoundError),
        (Answer(401, {"code": 401, "message": "INVALID_API_KEY: bad key"}), SeedanceAuthError),
    ],
)
def test_a_permanent_status_failure_is_raised_at_once_without_retries(
    answer: Answer, error_class: type[SeedanceError]
) -> None:
    hook, adapter = make_hook(answer)

    with pytest.raises(error_class) as info:
        hook.get_status("gen-1")

    assert len(adapter.sent) == 1
    assert getattr(info.value, "endpoint", None) == "GET /v1/status"


def test_a_status_read_without_an_answer_is_a_connection_error_that_spent_nothing() -> None:
    hook, adapter = make_hook(refused())

    with pytest.raises(SeedanceConnectionError):
        hook.get_status("gen-1")

    assert len(adapter.sent) == 3
    assert adapter.posts() == []


# ----------------------------------------------------------------------------- more of the same rules
def test_the_generate_post_is_tried_at_most_three_times_whatever_the_status_retries() -> None:
    hook, adapter = make_hook(refused())
    hook.retry_policy = type(hook.retry_policy)(attempts=5, min_wait=0, max_wait=0)

    with pytest.raises(SeedanceConnectionError) as info:
        hook.submit_request(REQUEST)

    assert len(adapter.posts()) == 3
    assert BASE in str(info.value), "the error names the base URL that could not be reached"


def test_an_unexpected_transport_error_propagates_as_is_after_one_post() -> None:
    hook, adapter = make_hook(RuntimeError("adapter bug"))

    with pytest.raises(RuntimeError, match="adapter bug"):
        hook.submit_request(REQUEST)
    assert len(adapter.posts()) == 1


def test_a_refusal_keeps_the_servers_retry_after() -> None:
    limited = Answer(429, {"code": 429, "message": "RATE_LIMITED: slow down"}, {"Retry-After": "7"})
    hook, adapter = make_hook(limited, accepted())

    with pytest.raises(SeedanceError) as info:
        hook.submit_request(REQUEST)

    assert info.value.retry_after == 7.0 and len(adapter.posts()) == 1


def test_the_retry_log_names_what_is_retried(capsys: pytest.CaptureFixture[str]) -> None:
    hook, _ = make_hook(refused(), accepted())
    hook.submit_request(REQUEST)
    out = capsys.readouterr()
    assert "Reaching Seedance (nothing sent yet) failed (attempt 1 of 3)" in out.out + out.err

    hook, _ = make_hook(
        Answer(503, {"code": 503, "message": "INTERNAL_ERROR: busy"}),
        status_body(task_id="g", status="SUCCESS"),
    )
    hook.get_status("g")
    out = capsys.readouterr()
    assert "Seedance status read failed (attempt 1 of 3)" in out.out + out.err


def test_a_status_read_waits_at_least_the_servers_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    limited = Answer(429, {"code": 429, "message": "RATE_LIMITED: slow down"}, {"Retry-After": "7"})
    hook, adapter = make_hook(limited, status_body(task_id="g", status="SUCCESS"))

    assert hook.get_status("g").status == "SUCCESS"

    assert len(adapter.sent) == 2 and slept and slept[0] >= 7.0


def test_a_task_id_that_is_not_a_string_is_named_with_what_is_allowed() -> None:
    hook, _ = make_hook(accepted())
    with pytest.raises(SeedanceValidationError) as info:
        hook.get_status(42)  # type: ignore[arg-type]
    assert info.value.value == 42 and info.value.allowed == "a non-empty task id string"


def test_a_wait_gives_up_at_its_outage_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _s: None)
    hook, adapter = make_hook(Answer(503, {"code": 503, "message": "INTERNAL_ERROR: busy"}))
    hook.retry_policy = type(hook.retry_policy)(attempts=3, min_wait=0, max_wait=0, max_outage=0)

    with pytest.raises(SeedanceServerError):
        hook.wait_for_completion("g", poll_interval=0)

    assert len(adapter.sent) == 1, "an outage limit of 0 allows no second read"


def test_a_wait_past_its_deadline_during_an_outage_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from airflow_provider_seedance.exceptions import SeedanceTimeoutError

    monkeypatch.setattr("time.sleep", lambda _s: None)
    hook, adapter = make_hook(Answer(503, {"code": 503, "message": "INTERNAL_ERROR: busy"}))
    hook.retry_policy = type(hook.retry_policy)(attempts=3, min_wait=0, max_wait=0, max_outage=10_000)

    with pytest.raises(SeedanceTimeoutError):
        hook.wait_for_completion("g", poll_interval=0, deadline=time.time() - 1)

    assert len(adapter.sent) == 1


# ----------------------------------------------------------------------------- the hook's own rules
def test_the_hook_itself_resends_only_what_provably_never_left_whatever_the_transport_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defence in depth: even if the transport raised a retryable error for a generate POST that
    *may* have arrived (a future transport bug, another transport), ``submit_request`` does not
    send it again: its own predicate, not the error's ``retryable``, decides a resend."""
    hook, _ = make_hook(accepted())
    calls: list[str] = []
    may_have_arrived = SeedanceConnectionError(
        "dropped after sending", endpoint="POST /v1/generate", sent=True
    )
    busy = SeedanceServerError(503, "INTERNAL_ERROR", "busy")
    for error in (may_have_arrived, busy):
        assert error.retryable, "these are the errors a status read would retry"

        def exchange(method: str, path: str, *, error: SeedanceError = error, **_: Any) -> Any:
            calls.append(method)
            raise error

        monkeypatch.setattr(hook, "_exchange", exchange)
        calls.clear()
        with pytest.raises(type(error)):
            hook.submit_request(REQUEST)
        assert calls == ["POST"], f"{type(error).__name__} was sent again"


def test_a_407_answer_to_the_generate_post_names_the_endpoint_and_base_url_and_sent_nothing() -> None:
    hook, adapter = make_hook(Answer(407, b"Proxy Authentication Required"))

    with pytest.raises(SeedanceConnectionError) as info:
        hook.submit_request(REQUEST)

    message = str(info.value)
    assert message.startswith(
        f"Seedance POST /v1/generate could not reach {BASE} (the proxy asked for credentials"
    )
    assert never_created(info.value) and len(adapter.posts()) == 1


def test_the_client_certificate_goes_with_each_request_and_a_rejected_certificate_says_what_checked_it(
    tmp_path: Any,
) -> None:
    import ssl

    from urllib3.exceptions import SSLError as Urllib3SSLError

    from airflow_provider_seedance.hooks.tls import TlsSettings

    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read: the adapter is scripted")
    tls = TlsSettings(
        ca_bundle=str(bundle), source="the connection's extra 'verify'", client_cert=("c.pem", "k.pem")
    )
    rejected = ssl.SSLCertVerificationError(1, "certificate verify failed")
    rejected.verify_message = "self-signed certificate in certificate chain"  # type: ignore[attr-defined]
    failure = requests.exceptions.SSLError(MaxRetryError(None, "/v1/generate", Urllib3SSLError(rejected)))  # type: ignore[arg-type]
    hook, adapter = make_hook(accepted(), failure)
    hook.__dict__["settings"] = ConnectionSettings(BASE, "sk-secret", 2.0, 7.0, None, tls=tls)

    hook.submit_request(REQUEST)
    with pytest.raises(SeedanceConnectionError) as info:
        hook.submit_request(REQUEST)

    assert adapter.kwargs[0]["cert"] == ("c.pem", "k.pem")
    assert adapter.kwargs[0]["verify"] == str(bundle)
    assert f"checked against the connection's extra 'verify' = {bundle}" in str(info.value)
    assert never_created(info.value)


def test_a_wait_logs_its_status_retries_without_an_attempt_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wait retries for as long as an outage lasts (``max_outage``), not ``status_retries``
    times, so its log says no "of N" it would not keep."""
    monkeypatch.setattr("time.sleep", lambda _s: None)
    busy = Answer(503, {"code": 503, "message": "INTERNAL_ERROR: busy"})
    hook, adapter = make_hook(busy, busy, busy, busy, status_body(task_id="g", status="SUCCESS"))

    assert hook.wait_for_completion("g", poll_interval=0).status == "SUCCESS"

    out = capsys.readouterr()
    assert len(adapter.sent) == 5, "four failures in a row, more than status_retries=3, then the task"
    assert "Seedance status read failed (attempt 4): " in out.out + out.err
    assert "attempt 1 of" not in out.out + out.err


def test_submissions_and_failed_status_reads_are_counted_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_seedance import metrics

    counted: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(metrics, "incr", lambda stat, **tags: counted.append((stat, tags)))
    hook, _ = make_hook(accepted(), Answer(404, {"code": 404, "message": "TASK_NOT_FOUND: gone"}))

    hook.submit_request(REQUEST)
    with pytest.raises(SeedanceTaskNotFoundError):
        hook.get_status("gone")

    assert counted == [
        ("generations.submitted", {"conn_id": "seedance_fake"}),
        ("status_read_errors.not_found", {"conn_id": "seedance_fake", "kind": "not_found"}),
    ]
