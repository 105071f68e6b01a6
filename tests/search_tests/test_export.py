from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas
import pytest

from stagetune.search import SearchError
from stagetune.search._cli import main
from stagetune.search._export import export_trials, trials_frame
from stagetune.storage import open_storage
from tests.search_tests.conftest import SmallSearch


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips(small_search: SmallSearch, tmp_path: Path, suffix: str) -> None:
    storage = open_storage(small_search.url, read_only=True)
    path = export_trials(storage, "browse", tmp_path / f"trials{suffix}")
    table = pandas.read_csv(path) if suffix == ".csv" else pandas.read_parquet(path)

    studies = {
        s: optuna.load_study(study_name=f"browse/{s}", storage=small_search.url)
        for s in small_search.stages
    }
    assert len(table) == sum(len(study.trials) for study in studies.values())
    assert list(table.columns[:4]) == ["stage", "stage_index", "study", "number"]
    assert list(dict.fromkeys(table["stage"])) == list(small_search.stages)
    for index, (stage, study) in enumerate(studies.items()):
        rows = table[table["stage"] == stage].reset_index(drop=True)
        assert list(rows["stage_index"]) == [index] * len(study.trials)
        assert list(rows["study"]) == [f"browse/{stage}"] * len(study.trials)
        assert list(rows["number"]) == [t.number for t in study.trials]
        assert list(rows["state"]) == [t.state.name for t in study.trials]
        for row, trial in zip(rows.itertuples(index=False), study.trials, strict=True):
            value = row.value_val_accuracy  # type: ignore[attr-defined]
            if trial.value is None:
                assert math.isnan(value)
            else:
                assert value == trial.value
            for name, param in trial.params.items():
                assert getattr(row, f"params_{name}") == param
            config = json.loads(row.user_attrs_config)  # type: ignore[attr-defined]
            assert config == trial.user_attrs["config"]
    # A parameter a stage neither searched nor carried is empty in its rows.
    assert table.loc[table["stage"] == "lr", "params_dropout"].isna().all()
    # Parameters stay together, whichever stage brought them in.
    params = [c for c in table.columns if c.startswith("params_")]
    first = list(table.columns).index(params[0])
    assert list(table.columns[first : first + len(params)]) == params


def test_csv_and_parquet_hold_the_same_table(small_search: SmallSearch, tmp_path: Path) -> None:
    storage = open_storage(small_search.url, read_only=True)
    csv = pandas.read_csv(export_trials(storage, "browse", tmp_path / "t.csv"))
    parquet = pandas.read_parquet(export_trials(storage, "browse", tmp_path / "t.parquet"))
    assert list(csv.columns) == list(parquet.columns) == list(trials_frame(storage, "browse"))
    keep = [c for c in csv.columns if c.startswith(("params_", "value", "user_attrs_"))]
    pandas.testing.assert_frame_equal(
        csv[["stage", "number", *keep]],
        parquet[["stage", "number", *keep]],
        check_dtype=False,
    )


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("trials.xlsx", r"the file must end in one of \('.csv', '.parquet'\)"),
        ("missing/trials.csv", "the directory '.*missing' does not exist"),
    ],
)
def test_bad_output_paths(
    small_search: SmallSearch, tmp_path: Path, out: str, message: str
) -> None:
    with pytest.raises(SearchError, match=message):
        export_trials(open_storage(small_search.url, read_only=True), "browse", tmp_path / out)
    assert list(tmp_path.iterdir()) == []


def test_export_cli_writes_name_trials_csv_by_default(
    small_search: SmallSearch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--storage", small_search.url, "--name", "browse"]) == 0
    assert "written to browse-trials.csv" in capsys.readouterr().out
    assert len(pandas.read_csv(tmp_path / "browse-trials.csv")) == 12
    assert main(["export", "--storage", small_search.url, "--name", "nope"]) == 2
    assert "No search named 'nope'" in capsys.readouterr().err
