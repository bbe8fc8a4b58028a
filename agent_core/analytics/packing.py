"""How a day's Summary is stored: a few strings as JSON, every number packed as float64.

A day holds a hundred tallies and twenty top runs per objective, and every value a
percentile needs. Written as JSON rows, three months of days took longer to parse than the
rest of the figures; packed, reading a day is a JSON list of distinct strings (models, tools,
statuses) and numpy views of its bytes, then whole-array sums.

Layout of `samples` (little-endian float64), with n tallies, m top runs and k sample sets:
tally codes (objective, measure, key, key2; n x 4), counts (n), totals (n); top runs
(objective and kind codes, index into `runs`; m x 3), values (m, NaN for none), tokens (m),
unpriced tokens (m); sample codes (objective, measure, key, size; k x 4), then every sample
set's values. A code is an index into
`strings`, whose first entry is None; run ids are read only for the runs a range shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from agent_core.analytics.filters import TOP_RUNS
from agent_core.analytics.summary import (
    DEAREST,
    SLOWEST,
    TALLY_COLUMNS,
    TOP_COLUMNS,
    Summary,
)

VERSION = 1


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


def pack(summary: Summary) -> tuple[dict[str, Any], bytes]:
    """One day's Summary (every objective) as the `figures` JSON and the `samples` bytes."""
    strings = _Strings()
    tallies, top = summary.tallies, summary.top
    samples = {key: np.concatenate(pieces) for key, pieces in summary.samples.items()}
    tally_keys = tallies[["objective_id", "measure", "key", "key2"]].itertuples(index=False)
    parts: list[np.ndarray] = [
        np.array([strings.codes_of(row) for row in tally_keys], dtype="float64").reshape(-1),
        tallies["count"].to_numpy(dtype="float64"),
        tallies["total"].to_numpy(dtype="float64"),
        np.array(
            [
                [strings.code(objective_id), strings.code(kind), index]
                for index, (objective_id, kind) in enumerate(
                    zip(top["objective_id"], top["kind"], strict=True)
                )
            ],
            dtype="float64",
        ).reshape(-1),
        pd.to_numeric(top["value"], errors="coerce").to_numpy(dtype="float64"),
        top["tokens"].to_numpy(dtype="float64"),
        top["unpriced_tokens"].to_numpy(dtype="float64"),
        np.array(
            [[*strings.codes_of(key), values.size] for key, values in samples.items()],
            dtype="float64",
        ).reshape(-1),
        *samples.values(),
    ]
    figures = {
        "version": VERSION,
        "strings": strings.values,
        "runs": [str(run_id) for run_id in top["run_id"]],
        "sizes": [len(tallies), len(top), len(samples)],
    }
    return figures, np.concatenate(parts).astype("<f8").tobytes()


class Unpacker:
    """Stored days read into one Summary: tallies summed over days (kept per day and
    objective for the measures in `by_day`), the TOP_RUNS first runs of each kind, and the
    samples as views of the stored bytes; of one objective's runs only, when given."""

    def __init__(self, by_day: frozenset[str], objective_id: str | None = None) -> None:
        self.by_day = by_day
        self.strings = _Strings()
        self.objective = self.strings.code(objective_id) if objective_id else None
        self.tally_parts: list[np.ndarray] = []  # day, objective, measure, key, key2 codes
        self.amounts: list[np.ndarray] = []  # count, total
        self.top_parts: list[np.ndarray] = []  # day, objective, kind, day index, run index
        self.top_amounts: list[np.ndarray] = []  # value, tokens, unpriced tokens
        self.runs: list[list[str]] = []  # each day's top run ids
        self.summary = Summary()

    def add(self, day: str, figures: dict[str, Any], packed: bytes) -> None:
        local = np.array(self.strings.codes_of(figures["strings"]), dtype="int64")
        values = np.frombuffer(packed, dtype="<f8")
        n, m, k = figures["sizes"]
        at = 0

        def take(size: int) -> np.ndarray:
            nonlocal at
            piece = values[at : at + size]
            at += size
            return piece

        day_code = self.strings.code(day)
        codes = local[take(4 * n).astype("int64")].reshape(n, 4)
        amounts = np.column_stack([take(n), take(n)])
        mine = self._mine(codes[:, 0])
        self.tally_parts.append(np.column_stack([np.full(n, day_code), codes])[mine])
        self.amounts.append(amounts[mine])
        top = take(3 * m).astype("int64").reshape(m, 3)
        top_amounts = np.column_stack([take(m), take(m), take(m)])
        mine = self._mine(local[top[:, 0]])
        where = [np.full(m, day_code), local[top[:, 0]], local[top[:, 1]]]
        self.top_parts.append(
            np.column_stack([*where, np.full(m, len(self.runs)), top[:, 2]])[mine]
        )
        self.top_amounts.append(top_amounts[mine])
        self.runs.append(figures["runs"])
        names = self.strings.values
        for objective, measure, key, size in take(4 * k).reshape(k, 4):
            piece = take(int(size))
            owner = local[int(objective)]
            if self.objective is None or owner == self.objective:
                sample = (names[owner], names[local[int(measure)]], names[local[int(key)]])
                self.summary.samples.setdefault(sample, []).append(piece)

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
        """The TOP_RUNS first runs of each kind over these days (all a range needs), their
        ties included: chosen on the numbers, then ordered by first_of."""
        amounts = np.concatenate(self.top_amounts)
        kept = np.zeros(len(codes), dtype=bool)
        for kind in (SLOWEST, DEAREST):
            mine = codes[:, 2] == self.strings.code(kind)
            rank = np.nan_to_num(amounts[:, 0], nan=-1.0)
            if mine.sum() > TOP_RUNS:
                threshold = np.sort(rank[mine])[-TOP_RUNS]
                kept |= mine & (rank >= threshold)
            else:
                kept |= mine
        rows, found = codes[kept], amounts[kept]
        top = pd.DataFrame(
            {
                "day": names[rows[:, 0]],
                "objective_id": names[rows[:, 1]],
                "kind": names[rows[:, 2]],
                "run_id": [self.runs[day][index] for day, index in rows[:, 3:5]],
                "value": found[:, 0],
                "tokens": found[:, 1],
                "unpriced_tokens": found[:, 2],
            }
        )
        return top[TOP_COLUMNS]
