"""Great Expectations 1.x: the contract's suites as GE objects, the gate's results as GE validation
results, and Data Docs built from them under ``$CRM_HOME/quality_docs/``.

The ingest gate runs the suites as SQL (``quality.gate``); Great Expectations is the record: every
raw table's suite is stored in a file data context and each ingest run's per-rule counts
(``ops.check_results``, kind ``ingest_gate``) become one validation result per table, rendered by
GE's own Data Docs site builder. ``validate_frame`` runs a suite with GE's own pandas engine (the
test that the compiled SQL and GE agree uses it). Importing GE takes ~3 s, so nothing on the ingest
path imports this module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

from ingest.tables import SPECS
from quality.contract import expectations

DOCS_DIR = "quality_docs"
# gate results kept per table in the Data Docs (the newest week of daily runs): GE rebuilds a page for every
# stored result each time, so an unbounded store would make the docs step grow with the warehouse's age (35 runs
# stored, 945 pages: 20.0 s on the tiny tier); the full history stays in ops.check_results
DOCS_KEEP_RUNS = 7


def suite_name(table: str) -> str:
    return f"raw.{table}"


def ge_suite(table: str):
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    exps = [ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e["meta"]).to_domain_obj()
            for e in expectations(table)]
    return gx.ExpectationSuite(name=suite_name(table), expectations=exps,
                               meta={"source": "derived from the source contract by quality.contract"})


def validate_frame(table: str, frame, *, run_at: dt.datetime) -> dict[str, int]:
    """Run ``table``'s suite on a pandas frame with GE's engine: rule name → unexpected count.

    Expectations on columns the frame lacks, and row-set (SQL) expectations, are left out.
    """
    import great_expectations as gx

    cols = set(frame.columns)
    picked = [e for e in expectations(table) if e["type"] != "unexpected_rows_expectation"
              and all(c in cols for c in [e["kwargs"].get(k) for k in ("column", "column_A", "column_B")] +
                      e["kwargs"].get("column_list", []) if c)]
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = gx.ExpectationSuite(name=f"frame.{table}", expectations=[
        ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e["meta"]).to_domain_obj() for e in picked])
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("frame").add_dataframe_asset(table)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, expectation_parameters={"run_time": run_at.isoformat()},
                            result_format="COMPLETE")
    return {r.expectation_config.meta["name"]: int(r.result.get("unexpected_count") or 0) for r in result.results}


def _bind(value, params: dict):
    """``value`` with every ``{"$PARAMETER": name}`` replaced by ``params[name]`` (nested too)."""
    if isinstance(value, dict):
        if set(value) == {"$PARAMETER"} and value["$PARAMETER"] in params:
            return params[value["$PARAMETER"]]
        return {k: _bind(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_bind(v, params) for v in value]
    return value


def build_data_docs(home: Path, wh) -> tuple[Path, bool]:
    """Store each raw table's suite and its latest gate result in GE; build Data Docs. Returns index.html and
    whether it was rebuilt: when the suites, every table's latest gate results (passed, failing count, sample,
    message) and latest batch (rows, status) are what the last build showed, the pages are kept as they are
    (a run that found nothing new; `docs.fingerprint` beside them holds that digest)."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from ingest.warehouse import table_columns
    from quality.data_docs_offline import make_offline

    root = home / DOCS_DIR
    latest = {}
    if table_columns(wh, "ops.check_results"):
        rows = wh.query(
            "SELECT c.asset, c.check_name, c.passed, c.failing_count, c.failing_sample, c.message, c.checked_at, "
            "c.run_id FROM ops.check_results c JOIN (SELECT asset, max(checked_at) AS t FROM ops.check_results "
            "WHERE check_kind = 'ingest_gate' GROUP BY asset) m ON m.asset = c.asset AND m.t = c.checked_at "
            "WHERE c.check_kind = 'ingest_gate'")
        for asset, name, passed, n, sample, message, at, run_id in rows.iter_rows():
            latest.setdefault(asset.removeprefix("raw/"), {})[name] = (passed, n, sample, message, at, run_id)
    batches = {}
    if table_columns(wh, "ops.ingest_batches"):
        b = wh.query("SELECT asset, batch_id, rows_read, status, finished_at FROM ops.ingest_batches b WHERE "
                     "finished_at = (SELECT max(finished_at) FROM ops.ingest_batches x WHERE x.asset = b.asset)")
        batches = {a.removeprefix("raw/"): (bid, n, status) for a, bid, n, status, _ in b.iter_rows()}
    tables = [s.raw for s in SPECS] + ["email_events"]
    digest = hashlib.sha256(json.dumps({
        "gx": gx.__version__, "suites": {t: expectations(t) for t in tables},
        # a message names its run's batch ("1 rows quarantined (batch raw_x-<time>-…)"): not a change of result
        "results": {t: {n: (*v[:3], re.sub(r"\(batch [^)]*\)", "", v[3] or "")) for n, v in r.items()}
                    for t, r in latest.items()},
        "batches": {t: v[1:] for t, v in batches.items()}}, sort_keys=True, default=str).encode()).hexdigest()
    site = root / "gx" / "uncommitted" / "data_docs" / "local_site"
    fingerprint_file = root / "docs.fingerprint"
    if (site / "index.html").is_file() and fingerprint_file.is_file() and fingerprint_file.read_text() == digest:
        return site / "index.html", False
    context = gx.get_context(mode="file", project_root_dir=str(root))
    for table in tables:
        suite = ge_suite(table)
        context.suites.add_or_update(suite)
        results = latest.get(table)
        if not results:
            continue
        batch_id, rows_read, status = batches.get(table, ("unknown", 0, "unknown"))
        evrs = []
        for e in expectations(table):
            name = e["meta"]["name"]
            if name not in results:
                continue
            passed, n, sample, message, at, run_id = results[name]
            evaluated = not message.startswith("not evaluated")
            evrs.append(ExpectationValidationResult(
                success=bool(passed),
                # the run's values in place of the suite's parameters ({"$PARAMETER": "run_time"})
                expectation_config=ExpectationConfiguration(type=e["type"], kwargs=_bind(e["kwargs"], {
                                                                "run_time": at.isoformat()}),
                                                            meta=e["meta"] | {"gate": message}),
                result={"element_count": int(rows_read or 0), "unexpected_count": int(n or 0),
                        "unexpected_percent": 100.0 * int(n or 0) / max(int(rows_read or 0), 1),
                        "partial_unexpected_list": json.loads(sample) if sample else [],
                        "details": {"gate": message, "evaluated": evaluated}}))
        ok = sum(r.success for r in evrs)
        stamp = max(v[4] for v in results.values())
        run_name = next(iter(results.values()))[5] or f"ingest-{stamp:%Y%m%dT%H%M%S}"
        vr = ExpectationSuiteValidationResult(
            success=ok == len(evrs), results=evrs, suite_name=suite_name(table), batch_id=batch_id,
            statistics={"evaluated_expectations": len(evrs), "successful_expectations": ok,
                        "unsuccessful_expectations": len(evrs) - ok,
                        "success_percent": 100.0 * ok / max(len(evrs), 1)},
            suite_parameters={"run_time": stamp.isoformat()},
            meta={"batch_status": status, "rows_extracted": rows_read,
                  "great_expectations_version": gx.__version__,
                  # what the page's header and run info read: the asset, the run's name and time
                  "run_id": {"run_name": run_name, "run_time": stamp.isoformat()},
                  "batch_spec": {"data_asset_name": f"raw.{table}", "batch_id": batch_id,
                                 "rows_extracted": rows_read, "batch_status": status},
                  "active_batch_definition": {
                      "datasource_name": "warehouse", "data_asset_name": f"raw.{table}",
                      "batch_definition_name": "ingest batch", "batch_identifiers": {"batch_id": batch_id}}})
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name(table)),
            run_id=RunIdentifier(run_name=run_name, run_time=stamp), batch_identifier=batch_id)
        context.validation_results_store.set(key, vr)
    _prune(root / "gx" / "uncommitted" / "validations", site / "validations", DOCS_KEEP_RUNS)
    context.build_data_docs()
    make_offline(site)  # the CDN links GE writes replaced by vendored copies: the pages work offline
    fingerprint_file.write_text(digest)
    return site / "index.html", True


def _prune(store: Path, pages: Path, keep: int) -> None:
    """Removes each suite's stored validation results (``<suite>/<run name>/<run time>/<batch>.json``) and
    their pages beyond the ``keep`` newest run times."""
    import shutil

    for suite_dir in {f.parent.parent.parent for f in store.glob("**/*.json")}:
        runs = sorted((d for d in suite_dir.glob("*/*") if d.is_dir()), key=lambda d: d.name, reverse=True)
        for old in runs[keep:]:
            for root in (old, pages / old.relative_to(store)):
                shutil.rmtree(root, ignore_errors=True)
            for parent in (old.parent, pages / old.parent.relative_to(store)):
                if parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
