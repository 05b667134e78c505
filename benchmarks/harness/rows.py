"""The one row type of every benchmark: one provider on one case, with its timing and the suite's other
measurements, or the reason it did not run (nothing is dropped silently). `Row.as_record()` is one
element of a results JSON's "rows".

A suite's case says what the JSON holds besides the provider and the timing: `case.record()` gives the
case's own fields (first), `case.measured_fields` names the measurements (last; null when not measured).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from benchmarks.harness.timing import Timing, timing_record


class Case(Protocol):
    measured_fields: tuple[str, ...]

    def record(self) -> dict: ...


@dataclass(frozen=True)
class Row:
    case: Case
    provider: str
    label: str
    reason: str | None = None  # why the provider is unavailable for this case; None when it ran
    timing: Timing | None = None
    values: Mapping[str, object] = field(default_factory=dict)  # the suite's measurements, by JSON field

    @property
    def available(self) -> bool:
        return self.reason is None

    def __getitem__(self, name: str):
        """A measurement by its JSON field name; None when it was not measured."""
        return self.values.get(name)

    def with_values(self, **values) -> "Row":
        return replace(self, values={**self.values, **values})

    def as_record(self) -> dict:
        return {
            **self.case.record(),
            "provider": self.provider,
            "label": self.label,
            "available": self.available,
            "reason": self.reason,
            **timing_record(self.timing),
            **{name: self.values.get(name) for name in self.case.measured_fields},
        }


def speedups_over(rows: Iterable[Row], baselines: Iterable[str]) -> list[dict[str, float] | None]:
    """Per row: {baseline: the baseline's median time / the row's} over the baselines that were timed
    among `rows` (one case's rows); None for a row that was not timed."""
    rows = list(rows)
    baseline_ms = {row.provider: row.timing.median_ms for row in rows if row.provider in baselines and row.timing}
    return [
        {name: milliseconds / row.timing.median_ms for name, milliseconds in baseline_ms.items()}
        if row.timing else None
        for row in rows
    ]


def grouped(rows: Iterable[Row], key) -> dict[object, list[Row]]:
    """Rows by `key(row)`, the groups in the order they first appear, each in sweep order."""
    groups: dict[object, list[Row]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def with_speedup_over(rows: list[Row], baseline: str, name: str) -> list[Row]:
    """Each timed row with the measurement `name` = the baseline's median time / its own, where the
    baseline was timed among `rows` (one case's rows)."""
    return [row.with_values(**{name: speedups[baseline]}) if baseline in (speedups or {}) else row
            for row, speedups in zip(rows, speedups_over(rows, [baseline]), strict=True)]
