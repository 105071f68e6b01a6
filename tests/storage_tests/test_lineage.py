from __future__ import annotations

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


def test_a_study_whose_lineage_is_half_written_is_not_a_stage_yet(sqlite_url: str) -> None:
    # Another worker creates the study and then writes its attributes one by one; a
    # worker that reads it in between (a resume check) must not fail on it.
    storage = open_storage(sqlite_url)
    study = optuna.create_study(storage=storage, study_name=study_name("s", "lr"))
    lineage = StageLineage(
        search="s", stage="lr", index=0, n_stages=1, searches={}, carried={}, budget=4, plan="p"
    )
    for key, value in list(lineage.to_attrs().items())[:3]:
        study.set_user_attr(key, value)
    assert read_lineage(study) is None
    assert search_stages(storage, "s") == []
    write_lineage(study, lineage)
    assert [name for name, _ in search_stages(storage, "s")] == ["s/lr"]
