"""A prompt that ends in .txt or .j2 is text unless a template file by that name exists."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator


def _render(prompt: str, folder) -> str:
    with DAG("t", schedule=None, start_date=pendulum.datetime(2026, 1, 1), template_searchpath=[str(folder)]):
        op = SeedanceGenerateOperator(task_id="g", prompt=prompt)
    op.resolve_template_files()
    return op.render_template(op.prompt, {"ds": "2026-01-01"})


def test_prompt_ending_in_txt_is_rendered_as_text(tmp_path) -> None:
    assert _render("A cat reading notes.txt", tmp_path) == "A cat reading notes.txt"
    assert _render("{{ ds }} teaser.j2", tmp_path) == "2026-01-01 teaser.j2"


def test_prompt_naming_a_template_file_is_read_from_it(tmp_path) -> None:
    (tmp_path / "prompt.txt").write_text("a sunrise on {{ ds }}")
    assert _render("prompt.txt", tmp_path) == "a sunrise on 2026-01-01"


def test_an_optional_field_rendered_empty_is_unset_but_a_blank_prompt_is_named_in_the_error() -> None:
    import pytest

    from airflow_provider_seedance.exceptions import SeedanceValidationError

    request = SeedanceGenerateOperator(
        task_id="t", prompt="a fox", resolution=" ", aspect_ratio=""
    ).build_request()
    assert (request.resolution, request.aspect_ratio) == (None, None)
    with pytest.raises(SeedanceValidationError) as info:
        SeedanceGenerateOperator(task_id="u", prompt="  ").build_request()
    assert info.value.field == "prompt" and info.value.value == "  "
