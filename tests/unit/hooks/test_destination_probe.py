"""The destination check before the paid POST (``probe_destination``) and what the
existing-video check treats as "nothing there" (red team #18, D4).

The promises: a destination that cannot take the video is refused before anything is sent,
naming the field, the destination and why; a local destination's folder is created only
before a POST (``seedance-plan`` only reads); a remote store is never written by the check;
only "not found" means "no video there", any other error at the destination is raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceConfigurationError
from airflow_provider_seedance.hooks.delivery import as_storage_path, existing_video, probe_destination

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x01" * 100


@dataclass
class FakeRemote:
    """A remote object store's path (narrow stand-in): records what the check did to it."""

    protocol: str = "s3"
    exists_error: BaseException | None = None
    open_error: BaseException | None = None
    is_there: bool = False
    calls: list[str] = field(default_factory=list)

    @property
    def fs(self) -> object:
        self.calls.append("fs")
        return object()

    @property
    def parent(self) -> Any:
        raise AssertionError("a remote store's folder must not be touched (s3fs mkdir creates buckets)")

    def exists(self) -> bool:
        self.calls.append("exists")
        if self.exists_error is not None:
            raise self.exists_error
        return self.is_there

    def is_file(self) -> bool:
        return self.is_there

    def open(self, mode: str) -> Any:
        self.calls.append(f"open {mode}")
        assert self.open_error is not None
        raise self.open_error

    def __str__(self) -> str:
        return "s3://bucket/fox.mp4"


# ---------------------------------------------------------------- existing_video
def test_a_video_removed_between_the_check_and_the_read_is_no_video() -> None:
    gone = FakeRemote(is_there=True, open_error=FileNotFoundError("s3://bucket/fox.mp4"))
    assert existing_video(gone) is None  # type: ignore[arg-type]
    assert gone.calls == ["exists", "open rb"]


@pytest.mark.parametrize("error", [PermissionError("Access Denied"), ValueError("no store"), OSError("I/O")])
def test_an_error_other_than_not_found_at_the_destination_is_not_taken_for_no_video(error) -> None:
    with pytest.raises(type(error)):
        existing_video(FakeRemote(is_there=True, open_error=error))  # type: ignore[arg-type]
    with pytest.raises(type(error)):
        existing_video(FakeRemote(exists_error=error))  # type: ignore[arg-type]


# ---------------------------------------------------------------- probe_destination
def test_a_scheme_with_no_filesystem_is_refused_naming_field_value_and_reason() -> None:
    target = as_storage_path("ftp://videos.example.com/fox.mp4")

    with pytest.raises(SeedanceConfigurationError) as caught:
        probe_destination(target, "output_path", reuse=False)

    assert str(caught.value) == (
        f"output_path {str(target)!r} cannot be written: ValueError: No filesystem "
        "registered for scheme ftp (no installed Airflow provider registers 'ftp': install the "
        "provider of that store where the tasks run); nothing was sent."
    )


class NoStore(FakeRemote):
    """A destination whose scheme no installed provider registers (what Airflow raises)."""

    @property
    def fs(self) -> object:
        raise ValueError(f"No filesystem registered for scheme {self.protocol}")


@pytest.mark.parametrize(
    ("scheme", "package"),
    [
        ("s3", "apache-airflow-providers-amazon[s3fs]"),
        ("gs", "apache-airflow-providers-google"),
        ("abfs", "apache-airflow-providers-microsoft-azure"),
    ],
)
def test_a_store_whose_provider_is_missing_names_the_package_to_install(scheme: str, package: str) -> None:
    with pytest.raises(SeedanceConfigurationError) as caught:
        probe_destination(NoStore(protocol=scheme), "output_path", reuse=True)  # type: ignore[arg-type]

    assert str(caught.value).endswith(
        f"No filesystem registered for scheme {scheme} (install {package} on the workers); nothing was sent."
    )


def test_other_store_errors_get_no_install_hint() -> None:
    refused = FakeRemote(exists_error=ValueError("Access denied"))

    with pytest.raises(SeedanceConfigurationError) as caught:
        probe_destination(refused, "output_path", reuse=False)  # type: ignore[arg-type]

    assert str(caught.value).endswith("cannot be written: ValueError: Access denied; nothing was sent.")


def test_before_the_post_a_local_folder_is_created(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "fox.mp4"

    assert probe_destination(as_storage_path(str(target)), "output_path", reuse=True) is None

    assert target.parent.is_dir()


def test_a_local_path_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    target = as_storage_path(str(tmp_path / "a-file" / "fox.mp4"))

    with pytest.raises(SeedanceConfigurationError) as caught:
        probe_destination(target, "output_path", reuse=False)

    assert str(caught.value).endswith(
        f"NotADirectoryError: a part of its folder {str(target.parent)!r} exists and is not a folder; "
        "nothing was sent."
    )


def test_a_plan_only_reads_a_local_destination_and_does_not_say_nothing_was_sent(tmp_path: Path) -> None:
    target = tmp_path / "new" / "fox.mp4"
    assert (
        probe_destination(as_storage_path(str(target)), "output_path", reuse=True, before_post=False) is None
    )
    assert not target.parent.exists()

    with pytest.raises(SeedanceConfigurationError) as caught:
        probe_destination(
            as_storage_path("ftp://videos.example.com/x.mp4"), "output_path", reuse=False, before_post=False
        )
    assert str(caught.value).endswith(
        "No filesystem registered for scheme ftp (no installed Airflow provider registers 'ftp': "
        "install the provider of that store where the tasks run)."
    )


def test_with_reuse_the_video_already_there_is_returned_and_without_it_not(tmp_path: Path) -> None:
    (tmp_path / "fox.mp4").write_bytes(MP4)
    target = as_storage_path(str(tmp_path / "fox.mp4"))

    found = probe_destination(target, "output_path", reuse=True)

    assert found is not None and found.bytes == len(MP4)
    assert probe_destination(target, "output_path", reuse=False) is None


def test_a_remote_store_is_read_not_written() -> None:
    remote = FakeRemote()
    assert probe_destination(remote, "output_path", reuse=False) is None  # type: ignore[arg-type]
    assert remote.calls == ["fs", "exists"]


def test_a_remote_store_that_cannot_be_read_is_refused_before_the_post() -> None:
    remote = FakeRemote(exists_error=PermissionError("Access Denied"))
    with pytest.raises(SeedanceConfigurationError) as caught:
        probe_destination(remote, "output_path_template", reuse=False)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "output_path_template 's3://bucket/fox.mp4' cannot be written: PermissionError: Access Denied; "
        "nothing was sent."
    )


def test_an_error_without_text_is_named_by_its_type() -> None:
    remote = FakeRemote(exists_error=PermissionError())
    with pytest.raises(SeedanceConfigurationError, match=r"cannot be written: PermissionError; nothing"):
        probe_destination(remote, "output_path", reuse=False)  # type: ignore[arg-type]
