from __future__ import annotations

from typing import Any

import optuna
import pytest

from stagetune.storage import (
    StageLineage,
    open_storage,
    read_lineage,
    search_stages,
    study_name,
    write_lineage,
)


def test_study_names_are_search_slash_stage() -> None:
    assert study_name("demo", "weight_decay") == "demo/weight_decay"
    with pytest.raises(ValueError, match="without '/'"):
        study_name("a/b", "lr")


def test_lineage_round_trips_and_lists_stages_in_order(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    for index, stage in reversed(list(enumerate(["lr", "weight_decay"]))):
        study = optuna.create_study(storage=storage, study_name=study_name("s", stage))
        lineage = StageLineage(
            search="s",
            stage=stage,
            index=index,
            n_stages=2,
            searches={stage: {"type": "float", "low": 0.1, "high": 1.0, "log": False}},
            carried={"lr": 0.01} if index else {},
            budget=4,
            plan="abc",
        )
        write_lineage(study, lineage)
        assert read_lineage(study) == lineage
    optuna.create_study(storage=storage, study_name="other")
    assert [name for name, _ in search_stages(storage, "s")] == ["s/lr", "s/weight_decay"]
    assert search_stages(storage, "t") == []


class _WriterDied(Exception):
    pass


def _dies_after(study: optuna.Study, writes: int) -> None:
    """Make ``study.set_user_attr`` write ``writes`` attributes, then raise."""
    real = study.set_user_attr
    done: list[str] = []

    def set_user_attr(key: str, value: Any) -> None:
        if len(done) == writes:
            raise _WriterDied
        done.append(key)
        real(key, value)

    study.set_user_attr = set_user_attr  # type: ignore[method-assign]


def test_a_study_whose_lineage_is_half_written_is_not_a_stage_yet(sqlite_url: str) -> None:
    # A worker writes the lineage attribute by attribute; another that reads the study
    # in between (a resume check, without the search lock) sees no lineage or all of it.
    storage = open_storage(sqlite_url)
    lineage = StageLineage(
        search="s", stage="lr", index=0, n_stages=1, searches={}, carried={}, budget=4, plan="p"
    )
    for writes in range(len(lineage.to_attrs()) + 1):
        study = optuna.create_study(storage=storage, study_name=study_name("s", f"lr{writes}"))
        _dies_after(study, writes)
        try:
            write_lineage(study, lineage)
        except _WriterDied:
            assert read_lineage(study) is None
            assert search_stages(storage, "s") == []
        else:
            break  # every attribute written
    assert writes > 1 and read_lineage(study) == lineage
    assert [name for name, _ in search_stages(storage, "s")] == [f"s/lr{writes}"]
