"""The lineage facet builder: dataset names per scheme, no secret, bounded lists, and what the
operators hand to OpenLineage after a try (fake hook; the real listener: tests/dag/test_lineage_events.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from airflow.sdk import Asset
from openlineage.client.naming import dataset as naming
from openlineage.client.serde import Serde

from airflow_provider_seedance.exceptions import SeedanceBudgetExceededError, SeedanceGenerationFailedError
from airflow_provider_seedance.lineage import (
    FACET_NAME,
    MAX_LISTED,
    DatasetRef,
    dataset_for,
    lineage_of,
    public_url,
    request_parameters,
)
from airflow_provider_seedance.lineage.facets import SCHEMA_URL, SeedanceRunFacet, operator_lineage, schema
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.results import GenerationResult, Outcome
from airflow_provider_seedance.task_support import XCOM_RESULT
from tests.conftest import REPO
from tests.unit.fakes import FakeHook, Store, context, use

SIGNED = (
    "https://user:pw@images.example.com:8443/p/shoe.jpg?X-Amz-Signature=SIGNED&X-Amz-Credential=AKIA#frag"
)


# ---------------------------------------------------------------- dataset names
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/videos/a.mp4", naming.LocalFileSystem(path="/data/videos/a.mp4")),
        ("file:///data/videos/a.mp4", naming.LocalFileSystem(path="/data/videos/a.mp4")),
        ("file://nas01/videos/a.mp4", naming.RemoteFileSystem(host="nas01", path="/videos/a.mp4")),
        ("s3://bucket/catalog/a.mp4", naming.S3(bucket_name="bucket", object_key="catalog/a.mp4")),
        # An ObjectStoragePath's Airflow connection id is user info: never part of the name.
        (
            "s3://aws_default@bucket/catalog/a.mp4",
            naming.S3(bucket_name="bucket", object_key="catalog/a.mp4"),
        ),
        ("gs://media/a.mp4", naming.GCS(bucket_name="media", object_key="a.mp4")),
        ("gcs://media/a.mp4", naming.GCS(bucket_name="media", object_key="a.mp4")),
        ("hdfs://nn:8020/v/a.mp4", naming.HDFS(namenode_host="nn", namenode_port="8020", path="/v/a.mp4")),
    ],
)
def test_storage_paths_are_named_as_the_openlineage_naming_spec_names_them(uri: str, expected: Any) -> None:
    assert dataset_for(uri) == DatasetRef(expected.get_namespace(), expected.get_name())


def test_a_reference_image_url_is_named_by_host_and_path_without_anything_secret() -> None:
    assert public_url(SIGNED) == "https://images.example.com:8443/p/shoe.jpg"
    assert dataset_for(public_url(SIGNED)) == DatasetRef("https://images.example.com:8443", "/p/shoe.jpg")
    assert dataset_for(SIGNED) == DatasetRef("https://images.example.com:8443", "/p/shoe.jpg")
    assert dataset_for("  ") is None


def test_request_parameters_keep_every_field_but_what_a_url_may_hide() -> None:
    request = {
        "prompt": "a shoe",
        "resolution": "480p",
        "duration": "4",
        "generate_audio": True,
        "image_urls": [SIGNED],
        "callback_url": "https://hooks.example.com/seedance?token=T0KEN",
    }
    assert request_parameters(request) == {
        "prompt": "a shoe",
        "resolution": "480p",
        "duration": "4",
        "generate_audio": True,
        "image_urls": ["https://images.example.com:8443/p/shoe.jpg"],
        "callback_url": "https://hooks.example.com/seedance",
    }


# ---------------------------------------------------------------- the facet builder
def succeeded(n: int, image: str = SIGNED, out: str | None = None) -> GenerationResult:
    return GenerationResult(
        outcome=Outcome.SUCCEEDED,
        task_id=f"gen-{n}",
        status="SUCCESS",
        consumed_credits=8,
        request={"prompt": f"item {n}", "image_urls": [image]},
        seedance_task_ids=(f"gen-{n}",),
        output_path=out if out is not None else f"s3://aws_default@bucket/v/{n}.mp4",
    )


def test_lineage_lists_images_in_and_delivered_videos_out_and_counts_the_money() -> None:
    results = [
        succeeded(1),
        succeeded(2),  # the same reference image: one input dataset
        GenerationResult(
            outcome=Outcome.GENERATION_FAILED,
            task_id="gen-3",
            status="FAILED",
            request={"prompt": "item 3"},
            seedance_task_ids=("gen-3",),
        ),
        GenerationResult.reused("file:///v/4.mp4", 10, "ab", {"prompt": "item 4"}),
    ]
    lineage = lineage_of(results)
    assert lineage.inputs == (DatasetRef("https://images.example.com:8443", "/p/shoe.jpg"),)
    assert lineage.outputs == (
        DatasetRef("s3://bucket", "v/1.mp4"),
        DatasetRef("s3://bucket", "v/2.mp4"),
        DatasetRef("file", "/v/4.mp4"),
    )
    facet = lineage.run_facet
    assert facet["seedanceTaskIds"] == ["gen-1", "gen-2", "gen-3"]
    assert facet["consumedCredits"] == 16 and facet["consumedUsd"] == 0.08
    assert facet["outcomes"] == {"generation_failed": 1, "reused": 1, "succeeded": 2}
    assert facet["requestCount"] == 4 and [r["prompt"] for r in facet["requests"]] == [
        "item 1",
        "item 2",
        "item 3",
        "item 4",
    ]


def test_a_large_batch_lists_a_bounded_number_of_datasets_and_counts_them_all() -> None:
    results = [succeeded(n, image=f"https://img.example.com/{n}.jpg") for n in range(MAX_LISTED + 150)]
    lineage = lineage_of(results)
    assert len(lineage.inputs) == len(lineage.outputs) == MAX_LISTED
    facet = lineage.run_facet
    assert len(facet["seedanceTaskIds"]) == len(facet["requests"]) == MAX_LISTED
    assert facet["seedanceTaskIdCount"] == facet["requestCount"] == MAX_LISTED + 150
    assert facet["inputCount"] == facet["outputCount"] == MAX_LISTED + 150
    assert facet["consumedCredits"] == 8 * (MAX_LISTED + 150)  # the money is never truncated
    assert lineage_of(results, limit=3).run_facet["seedanceTaskIds"] == ["gen-0", "gen-1", "gen-2"]


def test_the_openlineage_objects_are_secret_free_and_keep_the_shipped_schema() -> None:
    result = succeeded(1).with_(
        request={"prompt": "p", "image_urls": [SIGNED], "callback_url": "https://h.example.com/cb?sig=S1G"}
    )
    built = operator_lineage(lineage_of([result]), inlets=[Asset("file:///srv/catalog.json")])
    assert [(d.namespace, d.name) for d in built.inputs] == [
        ("file", "/srv/catalog.json"),
        ("https://images.example.com:8443", "/p/shoe.jpg"),
    ]
    facet = built.run_facets[FACET_NAME]
    assert isinstance(facet, SeedanceRunFacet) and facet._schemaURL == SCHEMA_URL
    text = json.dumps({FACET_NAME: Serde.to_dict(facet)})
    for secret in ("SIGNED", "AKIA", "S1G", "pw@", "aws_default"):
        assert secret not in text
    document = json.loads(schema())
    assert SCHEMA_URL.split("#")[0] == document["$id"]
    jsonschema.Draft202012Validator(document).validate(json.loads(text))


# ---------------------------------------------------------------- the operators
def test_the_single_operator_hands_over_its_generation_after_success(tmp_path: Path) -> None:
    hook = FakeHook()
    operator = use(
        SeedanceGenerateOperator(
            task_id="generate",
            prompt="a shoe",
            image_urls=[SIGNED],
            output_path=str(tmp_path / "a.mp4"),
            deferrable=False,
            poll_interval=0.001,
        ),
        hook,
    )
    operator.execute(context(Store()))
    built = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in built.outputs] == [("file", str(tmp_path / "a.mp4"))]
    assert [(d.namespace, d.name) for d in built.inputs] == [
        ("https://images.example.com:8443", "/p/shoe.jpg")
    ]
    facet = built.run_facets[FACET_NAME]
    assert facet.seedanceTaskIds == ["gen-1"] and facet.consumedCredits == 8


def test_a_failed_generation_is_handed_over_with_its_id_and_no_output(tmp_path: Path) -> None:
    hook = FakeHook(statuses={"gen-1": ["FAILED"]})
    operator = use(
        SeedanceGenerateOperator(
            task_id="generate",
            prompt="a shoe",
            output_path=str(tmp_path / "a.mp4"),
            deferrable=False,
            poll_interval=0.001,
        ),
        hook,
    )
    with pytest.raises(SeedanceGenerationFailedError):
        operator.execute(context(Store()))
    built = operator.get_openlineage_facets_on_failure(None)
    facet = built.run_facets[FACET_NAME]
    assert built.outputs == [] and facet.seedanceTaskIds == ["gen-1"]
    assert facet.outcomes == {"generation_failed": 1} and facet.consumedCredits == 0


def test_a_resumed_task_that_times_out_hands_over_every_generation_it_paid_for() -> None:
    from airflow.exceptions import TaskDeferred

    from airflow_provider_seedance.exceptions import SeedanceTimeoutError

    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    operator = use(
        SeedanceGenerateOperator(
            task_id="generate", prompt="a shoe", deferrable=True, resubmit_on_failure=1, timeout=600
        ),
        hook,
    )
    with pytest.raises(TaskDeferred):
        operator.execute(context(store))
    failed = {"status": "failed", "task": {"task_id": "gen-1", "status": "FAILED"}, "message": ""}
    with pytest.raises(TaskDeferred):
        operator.execute_complete(context(store), failed, seedance_task_id="gen-1")
    running = {"status": "timeout", "task": {"task_id": "gen-2", "status": "IN_PROGRESS"}, "message": ""}
    ctx = context(store)
    with pytest.raises(SeedanceTimeoutError):
        operator.execute_complete(ctx, running, seedance_task_id="gen-2")

    assert ctx["ti"].xcoms[XCOM_RESULT]["seedance_task_ids"] == ["gen-1", "gen-2"]
    facet = operator.get_openlineage_facets_on_failure(None).run_facets[FACET_NAME]
    assert facet.seedanceTaskIds == ["gen-1", "gen-2"]


def test_the_batch_operator_hands_over_every_item(tmp_path: Path) -> None:
    items = [
        {"id": f"sku-{n}", "prompt": f"item {n}", "image_urls": [f"https://img.example.com/{n}.jpg?s=1"]}
        for n in range(3)
    ]
    operator = use(
        SeedanceBatchGenerateOperator(
            task_id="batch",
            requests=items,
            output_path_template=str(tmp_path) + "/{id}.mp4",
            deferrable=False,
            poll_interval=0.001,
        ),
        FakeHook(),
    )
    operator.execute(context(Store()))
    built = operator.get_openlineage_facets_on_complete(None)
    assert [d.name for d in built.inputs] == ["/0.jpg", "/1.jpg", "/2.jpg"]
    assert [d.name for d in built.outputs] == [str(tmp_path / f"sku-{n}.mp4") for n in range(3)]
    facet = built.run_facets[FACET_NAME]
    assert facet.seedanceTaskIds == ["gen-1", "gen-2", "gen-3"] and facet.consumedCredits == 24


def test_a_batch_that_fails_before_sending_hands_over_its_requests_and_nothing_spent() -> None:
    operator = use(
        SeedanceBatchGenerateOperator(task_id="batch", requests=[{"prompt": "x"}] * 2, max_credits=1),
        FakeHook(),
    )
    with pytest.raises(SeedanceBudgetExceededError):
        operator.execute(context(Store()))
    facet = operator.get_openlineage_facets_on_failure(None).run_facets[FACET_NAME]
    assert facet.outcomes == {"not_sent": 2} and facet.seedanceTaskIds == [] and facet.consumedCredits == 0


# ---------------------------------------------------------------- optional
def test_the_provider_imports_and_generates_without_openlineage(tmp_path: Path) -> None:
    """With OpenLineage's modules and distributions hidden, the package imports and both operators
    run; only the lineage methods (which OpenLineage alone calls) need it (tests/unit/no_openlineage.py)."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.no_openlineage"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "OK"


# ---------------------------------------------------------------- red-team checks
def test_an_unreadable_storage_path_costs_its_own_dataset_not_the_task_s_lineage() -> None:
    """lineage is built after the try ended, from whatever paths it met: one path that does not
    parse as a URL (a bad port, a broken IPv6 host) must not lose every other dataset and the
    run facet (the OpenLineage provider would drop the whole lineage of the task)."""
    results = [
        succeeded(1, out="hdfs://nn:99999/v/1.mp4"),
        succeeded(2, out="file://[::1/v/2.mp4"),
        succeeded(3),
    ]
    lineage = lineage_of(results)
    assert lineage.outputs == (DatasetRef("s3://bucket", "v/3.mp4"),)
    assert lineage.run_facet["seedanceTaskIds"] == ["gen-1", "gen-2", "gen-3"]
    assert public_url("https://h.example.com:99999/p.jpg?sig=S") == ""


def test_a_10000_item_batch_gives_a_facet_of_bounded_size() -> None:
    prompt = "p" * 2000  # the longest prompt the API accepts
    results = [
        succeeded(n, image=f"https://img.example.com/{n}.jpg").with_(
            request={"prompt": prompt, "image_urls": [f"https://img.example.com/{n}.jpg"]}
        )
        for n in range(10_000)
    ]
    built = operator_lineage(lineage_of(results))
    size = len(json.dumps(Serde.to_dict(built.run_facets[FACET_NAME])))
    assert len(built.inputs) == len(built.outputs) == MAX_LISTED
    assert size < (MAX_LISTED + 1) * (len(prompt) + 200)  # what 100 requests take, not 10,000
    assert built.run_facets[FACET_NAME].requestCount == 10_000
