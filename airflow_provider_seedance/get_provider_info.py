"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_seedance import __version__

PACKAGE = "airflow_provider_seedance"
INTEGRATION = "Seedance"

#: The connection form: what the ``seedance`` connection type shows in the Airflow UI.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": {
        "host": "https://seedanceapi.org",
        "password": "your Seedance API key",
        "extra": '{"timeout": 30, "proxy": "http://proxy.example.com:3128"}',
    },
}

#: Extra fields of the form (Airflow 3.2+ reads these from metadata; stored in ``extra``).
CONN_FIELDS: dict[str, Any] = {
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Read timeout of each API request; connecting waits at most 10 s.",
        "schema": {"type": ["number", "null"], "minimum": 1},
    },
    "proxy": {
        "label": "Proxy",
        "description": "HTTP(S) proxy URL for API requests, e.g. http://proxy.example.com:3128.",
        "schema": {"type": ["string", "null"]},
    },
    "status_reads_per_second": {
        "label": "Status reads per second",
        "description": "Cap on the status reads of this connection per triggerer (e.g. 200); empty: no cap.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "callback_base_url": {
        "label": "Callback base URL",
        "description": (
            "Public https:// URL of the Airflow API server; with a callback secret, generations "
            "report back to /seedance/callbacks/ there instead of waiting for the next poll."
        ),
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "callback_secret": {
        "label": "Callback secret",
        "description": "Key of the callback tokens, at least 32 characters; set with the callback base URL.",
        "schema": {"type": ["string", "null"], "format": "password", "minLength": 32},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-seedance",
        "name": "Seedance",
        "description": "Seedance 2.0 AI video generation: submit, wait in the triggerer, deliver.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://seedanceapi.org",
                "tags": ["ai", "video"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.hooks.seedance"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [f"{PACKAGE}.operators.seedance", f"{PACKAGE}.operators.batch"],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.sensors.seedance"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [f"{PACKAGE}.triggers.seedance", f"{PACKAGE}.triggers.batch"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": f"{PACKAGE}.hooks.seedance.SeedanceHook",
                "hook-name": "Seedance",
                "connection-type": "seedance",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
        "extra-links": [f"{PACKAGE}.links.SeedanceVideoLink"],
    }
