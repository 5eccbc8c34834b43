"""A :class:`~airflow_provider_seedance.lineage.Lineage` as OpenLineage objects.

This module imports the OpenLineage client and the OpenLineage provider at its top: only the
operators' ``get_openlineage_facets_on_*`` methods import it, and the OpenLineage provider
calls those only where it is installed and enabled.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files
from typing import Any

from airflow.providers.common.compat.openlineage.utils.utils import translate_airflow_asset
from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define, field
from openlineage.client.event_v2 import Dataset, InputDataset, OutputDataset
from openlineage.client.facet_v2 import RunFacet

from airflow_provider_seedance.lineage import FACET_NAME, DatasetRef, Lineage

#: The JSON schema of the ``seedance`` run facet, shipped beside this module.
SCHEMA_FILE = "SeedanceRunFacet.json"
#: The facet's ``_schemaURL``: the shipped schema's ``$id`` and the pointer to its definition.
SCHEMA_URL = f"https://pypi.org/project/airflow-provider-seedance/{SCHEMA_FILE}#/$defs/SeedanceRunFacet"


def schema() -> str:
    """The text of the shipped JSON schema of :class:`SeedanceRunFacet`."""
    return files("airflow_provider_seedance.lineage").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@define
class SeedanceRunFacet(RunFacet):
    """What a Seedance task generated and spent (fields: docs/lineage.md)."""

    seedanceTaskIds: list[str] = field(factory=list)
    seedanceTaskIdCount: int = 0
    requests: list[dict[str, Any]] = field(factory=list)
    requestCount: int = 0
    consumedCredits: int = 0
    consumedUsd: float = 0.0
    outcomes: dict[str, int] = field(factory=dict)
    inputCount: int = 0
    outputCount: int = 0
    listLimit: int = 0

    # No field is exempt from Airflow's secret redaction (the provider masks known secrets).

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


def _declared(assets: Iterable[Any]) -> list[Dataset]:
    """The task's declared ``inlets``/``outlets`` that are Airflow assets, as OpenLineage datasets
    (e.g. the catalog file a batch's requests were read from, declared as an inlet)."""
    found: list[Dataset] = []
    for asset in assets or ():
        if type(asset).__name__ != "Asset":
            continue
        dataset = translate_airflow_asset(asset, None)
        if dataset is not None:
            found.append(dataset)
    return found


def operator_lineage(lineage: Lineage, *, inlets: Iterable[Any] = (), outlets: Iterable[Any] = ()) -> Any:
    """The ``OperatorLineage`` the OpenLineage provider emits for a Seedance task."""

    def merged(refs: Iterable[DatasetRef], declared: list[Dataset], kind: type[Dataset]) -> list[Dataset]:
        identities = [(d.namespace, d.name) for d in declared] + [(r.namespace, r.name) for r in refs]
        return [kind(namespace=namespace, name=name) for namespace, name in dict.fromkeys(identities)]

    return OperatorLineage(
        inputs=merged(lineage.inputs, _declared(inlets), InputDataset),
        outputs=merged(lineage.outputs, _declared(outlets), OutputDataset),
        run_facets={FACET_NAME: SeedanceRunFacet(**lineage.run_facet)},
    )


__all__ = ["SCHEMA_URL", "SeedanceRunFacet", "operator_lineage", "schema"]
