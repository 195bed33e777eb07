"""The Dagster instance refresh uses: its event log keeps connections open, in Dagster's own files."""

from __future__ import annotations

import dataclasses

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

import orchestration.dagster_storage as ds
from ingest.config import settings


@dg.asset
def probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=probe)
def probe_has_rows() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_refresh_instance_records_runs_readable_by_dagsters_own_storage(tmp_path, monkeypatch):
    from crm_warehouse.pipeline import dagster_instance

    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # restored after the test: dagster_instance sets it
    cfg = dataclasses.replace(settings(), home=tmp_path)
    instance = dagster_instance(cfg)
    home = tmp_path / "dagster"
    assert (home / "dagster.yaml").read_text().startswith(ds.MARKER)
    assert isinstance(instance.event_log_storage, ds.PooledSqliteEventLogStorage)
    for _ in range(2):
        assert dg.materialize([probe, probe_has_rows], instance=instance).success
    runs = instance.get_runs()
    assert len(runs) == 2
    # Dagster's own class, on the same files, reads what was written: events, materializations, checks
    plain = SqliteEventLogStorage(str(home / "history" / "runs"))
    for run in runs:
        mine = [e.dagster_event_type for e in instance.all_logs(run.run_id)]
        theirs = [e.dagster_event_type for e in plain.get_logs_for_run(run.run_id)]
        assert mine == theirs and dg.DagsterEventType.ASSET_MATERIALIZATION in mine
        assert dg.DagsterEventType.ASSET_CHECK_EVALUATION in mine
    latest = plain.get_latest_materialization_events([dg.AssetKey("probe")])[dg.AssetKey("probe")]
    assert latest.run_id == runs[0].run_id
    # connections stay open, at most MAX_OPEN_SHARDS of them; wiping closes them and empties the log
    storage = instance.event_log_storage
    monkeypatch.setattr(ds, "MAX_OPEN_SHARDS", 2)
    for run in runs:
        instance.all_logs(run.run_id)
    assert 0 < len(storage._engines) <= 2
    storage.wipe()
    assert not storage._engines and not storage.get_logs_for_run(runs[0].run_id)
    assert dg.materialize([probe], instance=instance).success and storage._engines
    instance.dispose()  # as run_refresh does when it ends: nothing left open
    assert not storage._engines


def test_a_dagster_yaml_not_written_by_the_project_is_kept(tmp_path):
    mine = "storage:\n  sqlite:\n    base_dir: /somewhere\n"
    (tmp_path / "dagster.yaml").write_text(mine)
    ds.ensure_instance_config(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == mine
    (tmp_path / "dagster.yaml").write_text(ds.MARKER + ": an older version\n")
    ds.ensure_instance_config(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == ds.instance_config(tmp_path)

