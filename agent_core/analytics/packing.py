"""How a day's Summary is stored: a few strings as JSON, every number packed as float64.

A day holds a hundred tallies and twenty top runs per objective, and every value a
percentile needs. Written as JSON rows, three months of days took longer to parse than the
rest of the figures; packed, reading a day is a JSON list of distinct strings (models, tools,
statuses) and numpy views of its bytes, then whole-array sums.

Layout of `samples`: little-endian float64 numbers, with n tallies, m top runs, k sample
sets and u usage rows of r runs: tally codes (objective, measure, key, key2; n x 4), counts
(n), totals (n); top runs (objective code, index into `top`; m x 2), their values
(m); sample codes (objective, measure, key, size; k x 4), then every sample set's values;
usage (objective code, run index, model code; u x 3), prompt tokens (u), completion tokens
(u). Then the r run ids as 16-byte UUIDs, named only for the runs a table shows. A code is
an index into `strings`, whose first entry is None.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from agent_core.analytics.filters import TOP_RUNS
from agent_core.analytics.summary import TALLY_COLUMNS, TOP_COLUMNS, Summary, Usage

VERSION = 3
RUN_ID_BYTES = 16


class _Strings:
    """Distinct strings and their codes, None first."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {None: 0}
        self.values: list[Any] = [None]

    def code(self, value: Any) -> int:
        if value is not None and not isinstance(value, str):
            value = None if value != value else str(value)  # NaN read as a missing key
        found = self.codes.get(value)
        if found is None:
            found = self.codes[value] = len(self.values)
            self.values.append(value)
        return found

    def codes_of(self, values: Iterable[Any]) -> list[int]:
        return [self.code(value) for value in values]


def _rows(codes: list[list[int]]) -> np.ndarray:
    return np.array(codes, dtype="float64").reshape(-1)


def pack(summary: Summary) -> tuple[dict[str, Any], bytes]:
    """One day's Summary (every objective) as the `figures` JSON and the `samples` bytes."""
    strings = _Strings()
    tallies, top = summary.tallies, summary.top
    samples = {key: np.concatenate(pieces) for key, pieces in summary.samples.items()}
    tally_keys = tallies[["objective_id", "measure", "key", "key2"]].itertuples(index=False)
    run_ids: list[str] = []
    usage_codes: list[list[int]] = []
    for part in summary.usage:
        names = part.run_ids(range(int(part.run.max()) + 1 if part.run.size else 0))
        for run, objective, model in zip(part.run, part.objective, part.model, strict=True):
            usage_codes.append([strings.code(objective), len(run_ids) + run, strings.code(model)])
        run_ids += names
    parts: list[np.ndarray] = [
        _rows([strings.codes_of(row) for row in tally_keys]),
        tallies["count"].to_numpy(dtype="float64"),
        tallies["total"].to_numpy(dtype="float64"),
        _rows([[strings.code(owner), index] for index, owner in enumerate(top["objective_id"])]),
        pd.to_numeric(top["value"], errors="coerce").to_numpy(dtype="float64"),
        _rows([[*strings.codes_of(key), values.size] for key, values in samples.items()]),
        *samples.values(),
        _rows(usage_codes),
        *(part.prompt for part in summary.usage),
        *(part.completion for part in summary.usage),
    ]
    figures = {
        "version": VERSION,
        "strings": strings.values,
        "top": [str(run_id) for run_id in top["run_id"]],
        "sizes": [len(tallies), len(top), len(samples), len(usage_codes), len(run_ids)],
    }
    numbers = np.concatenate(parts).astype("<f8").tobytes()
    return figures, numbers + b"".join(uuid.UUID(run_id).bytes for run_id in run_ids)


def _run_ids(packed: bytes) -> Any:
    """A function naming runs by index from RUN_ID_BYTES-byte UUIDs."""

    def named(wanted: Sequence[int]) -> list[str]:
        return [
            str(uuid.UUID(bytes=packed[i * RUN_ID_BYTES : (i + 1) * RUN_ID_BYTES])) for i in wanted
        ]

    return named


class Unpacker:
    """Stored days read into one Summary: tallies summed over days (kept per day and
    objective for the measures in `by_day`), the TOP_RUNS slowest runs, the samples and each
    day's usage as views of the stored bytes; of one objective's runs only, when given."""

    def __init__(self, by_day: frozenset[str], objective_id: str | None = None) -> None:
        self.by_day = by_day
        self.strings = _Strings()
        self.objective = self.strings.code(objective_id) if objective_id else None
        self.tally_parts: list[np.ndarray] = []  # day, objective, measure, key, key2 codes
        self.amounts: list[np.ndarray] = []  # count, total
        self.top_parts: list[np.ndarray] = []  # day, objective, day index, run index
        self.top_values: list[np.ndarray] = []
        self.top_ids: list[list[str]] = []  # each day's top run ids
        self.summary = Summary()

    def add(self, day: str, figures: dict[str, Any], packed: bytes) -> None:
        local = np.array(self.strings.codes_of(figures["strings"]), dtype="int64")
        n, m, k, u, r = figures["sizes"]
        numbers = len(packed) - r * RUN_ID_BYTES
        values = np.frombuffer(packed[:numbers], dtype="<f8")
        at = 0

        def take(size: int) -> np.ndarray:
            nonlocal at
            piece = values[at : at + size]
            at += size
            return piece

        def coded(size: int, limit: int = len(local)) -> np.ndarray:
            found = take(size).astype("int64")
            if found.size and (found.min() < 0 or found.max() >= limit):
                raise ValueError(f"the summary of {day} does not add up")
            return found

        day_code = self.strings.code(day)
        codes = local[coded(4 * n)].reshape(n, 4)
        amounts = np.column_stack([take(n), take(n)])
        mine = self._mine(codes[:, 0])
        self.tally_parts.append(np.column_stack([np.full(n, day_code), codes])[mine])
        self.amounts.append(amounts[mine])
        top = coded(2 * m, max(len(local), m)).reshape(m, 2)
        top_values = take(m)
        owners = local[top[:, 0]]
        mine = self._mine(owners)
        where = [np.full(m, day_code), owners, np.full(m, len(self.top_ids))]
        self.top_parts.append(np.column_stack([*where, top[:, 1]])[mine])
        self.top_values.append(top_values[mine])
        self.top_ids.append(figures["top"])
        names = self.strings.values
        layout = coded(4 * k, max(len(local), values.size + 1)).reshape(k, 4)
        sizes = layout[:, 3]
        pieces = np.split(take(int(sizes.sum())), np.cumsum(sizes)[:-1]) if k else []
        owners = local[layout[:, 0]]
        keys = zip(owners, local[layout[:, 1]], local[layout[:, 2]], strict=True)
        samples = self.summary.samples
        for (owner, measure, key), piece in zip(keys, pieces, strict=True):
            if self.objective is None or owner == self.objective:
                samples.setdefault((names[owner], names[measure], names[key]), []).append(piece)
        usage = coded(3 * u, max(len(local), r)).reshape(u, 3)
        prompt, completion = take(u), take(u)
        if at != values.size or (u and usage[:, 1].max() >= r):
            raise ValueError(f"the summary of {day} does not add up")
        mine = self._mine(local[usage[:, 0]])
        if mine.any():
            names_array = np.array(names, dtype=object)
            self.summary.usage.append(
                Usage(
                    run_ids=_run_ids(packed[numbers:]),
                    run=usage[mine, 1],
                    objective=names_array[local[usage[mine, 0]]],
                    model=names_array[local[usage[mine, 2]]],
                    prompt=prompt[mine],
                    completion=completion[mine],
                )
            )

    def _mine(self, objectives: np.ndarray) -> np.ndarray:
        if self.objective is None:
            return np.ones(len(objectives), dtype=bool)
        return objectives == self.objective

    def done(self) -> Summary:
        names = np.array(self.strings.values, dtype=object)
        if self.tally_parts:
            codes = np.concatenate(self.tally_parts)
            amounts = np.concatenate(self.amounts)
            by_day = np.isin(codes[:, 2], [self.strings.code(m) for m in self.by_day])
            codes[~by_day, :2] = 0  # summed over days and objectives
            frame = pd.DataFrame(codes, columns=TALLY_COLUMNS[:5])
            frame["count"], frame["total"] = amounts[:, 0], amounts[:, 1]
            summed = frame.groupby(TALLY_COLUMNS[:5], sort=False).sum().reset_index()
            for name in TALLY_COLUMNS[:5]:
                summed[name] = names[summed[name].to_numpy()]
            self.summary.tallies = summed[TALLY_COLUMNS]
        if self.top_parts:
            self.summary.top = self._first_runs(np.concatenate(self.top_parts), names)
        return self.summary

    def _first_runs(self, codes: np.ndarray, names: np.ndarray) -> pd.DataFrame:
        """The TOP_RUNS slowest runs over these days (all a range needs), their ties
        included: chosen on the numbers, then ordered by first_of."""
        values = np.concatenate(self.top_values)
        if len(values) > TOP_RUNS:
            keep = values >= np.sort(values)[-TOP_RUNS]
            codes, values = codes[keep], values[keep]
        top = pd.DataFrame(
            {
                "day": names[codes[:, 0]],
                "objective_id": names[codes[:, 1]],
                "run_id": [self.top_ids[day][index] for day, index in codes[:, 2:4]],
                "value": values,
            }
        )
        return top[TOP_COLUMNS]
