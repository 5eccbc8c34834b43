"""What the single and the batch trigger share: a connection and a wait, kept as restored.

A trigger is rebuilt from the kwargs stored in Airflow's database, perhaps by a later release
than the one that wrote them, perhaps from a row edited by hand. Airflow's triggerer survives only
a ``TypeError`` from a trigger's constructor; anything else stops the trigger runner with every
trigger on it. So the constructor keeps what does not convert as given
(:func:`~airflow_provider_seedance.values.restored`) and :meth:`PollingTrigger.check_settings`,
called when polling starts, refuses it: the trigger's own task ends with an ``error`` event that
names the field and the value, before any read.
"""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger

from airflow_provider_seedance.exceptions import SeedanceValidationError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.values import check_poll_settings, restored

#: The constructor arguments of :class:`PollingTrigger`, kept under their own names.
POLL_KWARGS = ("seedance_conn_id", "poll_interval", "end_time", "max_poll_failures", "max_outage")


class PollingTrigger(BaseTrigger):
    """A trigger that polls Seedance with one connection, at an interval, until a deadline."""

    #: The hook the trigger polls with (a subclass may swap in its own).
    hook_class: type[SeedanceHook] = SeedanceHook

    def __init__(
        self,
        seedance_conn_id: str,
        poll_interval: float,
        end_time: float | None,
        max_poll_failures: int | None,
        max_outage: float,
    ) -> None:
        """The subclasses' own constructors give the defaults (and document them)."""
        super().__init__()
        self.seedance_conn_id = seedance_conn_id
        # as given when they do not convert: checked when polling starts, never here
        self.poll_interval = restored(poll_interval, float)
        self.end_time = restored(end_time, float)
        self.max_poll_failures = restored(max_poll_failures, int)
        self.max_outage = restored(max_outage, float)

    def poll_kwargs(self) -> dict[str, Any]:
        """The kwargs of this class, for :meth:`serialize`."""
        return {name: getattr(self, name) for name in POLL_KWARGS}

    def check_settings(self) -> None:
        """Refuse a setting that cannot be used (see
        :func:`~airflow_provider_seedance.values.check_poll_settings`)."""
        if not isinstance(self.seedance_conn_id, str) or not self.seedance_conn_id:
            raise SeedanceValidationError("seedance_conn_id", self.seedance_conn_id, "a connection id")
        check_poll_settings(
            self.poll_interval,
            self.max_outage,
            end_time=self.end_time,
            max_poll_failures=self.max_poll_failures,
        )
