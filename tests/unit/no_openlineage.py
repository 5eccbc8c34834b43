"""Run with OpenLineage absent: ``python -m tests.unit.no_openlineage`` prints ``OK`` when the
package imports and both generating operators run (fake hook) with no OpenLineage module or
distribution visible, and only the lineage method, which OpenLineage alone calls, needs it."""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import sys
from typing import Any

BLOCKED = ("openlineage", "airflow.providers.openlineage")
HIDDEN = {
    "apache-airflow-providers-openlineage",
    "openlineage-python",
    "openlineage-integration-common",
    "openlineage-sql",
}


def blocked(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in BLOCKED)


class NoOpenLineage:
    """A finder that makes every OpenLineage module unimportable."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if blocked(name):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
        return None


def hide_distributions() -> None:
    """Airflow finds providers and plugins by entry point: their distributions go too."""
    modules: list[Any] = [importlib.metadata]
    try:
        import importlib_metadata

        modules.append(importlib_metadata)
    except ImportError:
        pass
    for metadata in modules:

        def visible(*args: Any, _all: Any = metadata.distributions, **kwargs: Any) -> list[Any]:
            return [d for d in _all(*args, **kwargs) if (d.metadata["Name"] or "").lower() not in HIDDEN]

        metadata.distributions = visible


def main() -> None:
    sys.meta_path.insert(0, NoOpenLineage())  # type: ignore[arg-type]
    hide_distributions()
    import airflow_provider_seedance

    for module in pkgutil.walk_packages(airflow_provider_seedance.__path__, "airflow_provider_seedance."):
        if module.name != "airflow_provider_seedance.lineage.facets" and not module.name.endswith("__main__"):
            importlib.import_module(module.name)

    from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
    from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
    from tests.unit.fakes import FakeHook, Store, context, use

    single = SeedanceGenerateOperator(task_id="g", prompt="p", deferrable=False, poll_interval=0.001)
    assert use(single, FakeHook()).execute(context(Store()))["status"] == "SUCCESS"
    batch = SeedanceBatchGenerateOperator(
        task_id="b", requests=[{"prompt": "p"}], deferrable=False, poll_interval=0.001
    )
    assert use(batch, FakeHook()).execute(context(Store()))["totals"]["succeeded"] == 1
    assert not [name for name in sys.modules if blocked(name)]
    try:
        single.get_openlineage_facets_on_complete(None)
    except ImportError:
        print("OK")


if __name__ == "__main__":
    main()
