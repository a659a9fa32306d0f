"""Run a campaign: expand it, key every job, estimate the cost, skip what the store holds, run the rest.

>>> prepared = prepare(Campaign.from_yaml("nightly.yaml"), base_dir=".")
>>> prepared.estimate_seconds          # of the jobs still to run, from a calibration pass per model
>>> result = execute(prepared, LocalPool(workers=2))

Resumable by construction: a job's run id is derived from its key (:func:`aisec.campaigns.jobs.job_key`),
a finished job is a run of that id in the store with status ``complete`` (or ``timeout``), and a job that
was killed left its run folder (``<out>/jobs/<run id>/``) with the checkpoints of what it finished, which
the next run resumes from. So the campaign run again after a kill — at any point — ends with the
evidence an uninterrupted run gives.

``<out>/campaign.json`` (the manifest) lists every job with its id, model, defence, data, check and
parameters; ``aisec campaign report`` reads it with the store.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aisec.campaigns.backends import Backend, InProcess
from aisec.campaigns.estimate import Calibration, JobCost, calibrate, job_cost
from aisec.campaigns.jobs import DONE, job_id, job_key
from aisec.campaigns.spec import Campaign, Job, expand
from aisec.core.errors import AisecError

MANIFEST = "campaign.json"


class ConfirmationNeeded(AisecError):
    """The estimated cost is above the campaign's ``confirm_above_seconds`` and ``--yes`` was not given."""


@dataclass
class PreparedJob:
    """A job with its identity (key, run id, digests), its estimated cost and what the store says of it."""

    job: Job
    key: str
    job_id: str
    model_sha256: str
    dataset_digest: str
    samples: int
    cost: JobCost
    status: str | None = None  # the store's status of its run (None: never started)

    @property
    def done(self) -> bool:
        return self.status in DONE


@dataclass
class Prepared:
    campaign: Campaign
    out: Path
    store_url: str
    jobs: list[PreparedJob]
    calibration: dict[str, Calibration] = field(default_factory=dict)

    @property
    def pending(self) -> list[PreparedJob]:
        return [j for j in self.jobs if not j.done]

    @property
    def estimate_seconds(self) -> float:
        return sum(j.cost.seconds for j in self.pending)

    def needs_confirmation(self) -> bool:
        return self.estimate_seconds > self.campaign.budget.confirm_above_seconds

    def estimate_text(self) -> str:
        """One line: jobs, passes, queries and expected time of what is still to run."""
        p = self.pending
        rough = sum(1 for j in p if j.cost.rough)
        return (f"{len(p)} of {len(self.jobs)} jobs to run ({len(self.jobs) - len(p)} already in the store): "
                f"{sum(j.cost.passes for j in p):,} forward+backward passes, {sum(j.cost.queries for j in p):,} "
                f"forward queries, about {_duration(self.estimate_seconds)} on one worker"
                + (f" ({rough} job(s) estimated roughly)" if rough else ""))


@dataclass
class CampaignResult:
    prepared: Prepared
    outcomes: list[dict[str, Any]]
    seconds: float
    backend: str
    #: the contest results written (``contest/<model>.json``), when the campaign has a contest block
    contest: list[Path] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o["status"]] = out.get(o["status"], 0) + 1
        return out


def campaign_out(campaign: Campaign, base_dir: str | Path) -> Path:
    """The campaign's folder: ``out`` (relative to the campaign file's folder), else ``<folder>/<name>``."""
    base = Path(base_dir)
    return (base / campaign.out if campaign.out else base / campaign.name).resolve()


def store_url_of(campaign: Campaign, out: Path) -> str:
    if campaign.store:
        return campaign.store
    return f"sqlite:///{out / 'evidence.db'}"


def prepare(campaign: Campaign, *, base_dir: str | Path, store: str | None = None,
            key_dir: str | Path | None = None) -> Prepared:
    """Expand and key every job (loading each model and dataset once), calibrate and look each job up in the store."""
    from aisec.api import load_model, plan_data
    from aisec.store import EvidenceNotFound, open_store

    out = campaign_out(campaign, base_dir)
    url = store or store_url_of(campaign, out)
    jobs = expand(campaign)
    datasets: dict[str, Any] = {}
    models: dict[str, tuple[str, Calibration]] = {}
    prepared: list[PreparedJob] = []
    for job in jobs:
        plan = job.plan()
        dkey = json.dumps([plan.data.model_dump(mode="json"), plan.model.path], sort_keys=True)
        if dkey not in datasets:
            datasets[dkey] = plan_data(plan)
        data = datasets[dkey]
        mkey = json.dumps([plan.model.model_dump(mode="json"), dkey], sort_keys=True)
        if mkey not in models:
            target = load_model(plan.model, data)
            models[mkey] = (target.spec.digest, calibrate(target, data))
        digest, cal = models[mkey]
        key = job_key(plan, model_sha256=digest, dataset_digest=data.info.digest)
        samples = min(int(job.params.get("samples") or len(data)), len(data))
        prepared.append(PreparedJob(job=job, key=key, job_id=job_id(key), model_sha256=digest,
                                    dataset_digest=data.info.digest, samples=samples,
                                    cost=job_cost(job.check, job.params, samples, cal)))
    out.mkdir(parents=True, exist_ok=True)
    with open_store(url, key_dir=key_dir) as s:
        for pj in prepared:
            try:
                pj.status = s.run(pj.job_id).status
            except EvidenceNotFound:
                pj.status = None
    return Prepared(campaign=campaign, out=out, store_url=url, jobs=prepared,
                    calibration={m: c for m, (_, c) in models.items()})


def payload(pj: PreparedJob, prepared: Prepared, *, key_dir: str | Path | None = None,
            threads: int | None = None) -> dict[str, Any]:
    """What a worker needs to run one job (plain JSON)."""
    return {"job_id": pj.job_id, "plan": pj.job.plan().model_dump(mode="json"),
            "out": str(prepared.out / "jobs" / pj.job_id), "store": prepared.store_url,
            "key_dir": str(key_dir) if key_dir else None, "time_limit": pj.job.time_limit, "threads": threads}


def write_manifest(prepared: Prepared) -> Path:
    """``<out>/campaign.json``: the campaign and every job with its id (what the report reads)."""
    doc = {
        "format": 1, "name": prepared.campaign.name, "store": prepared.store_url,
        "campaign": prepared.campaign.model_dump(mode="json"),
        "jobs": [{
            "job_id": pj.job_id, "index": pj.job.index, "key": pj.key, "model": pj.job.model.label,
            "model_ref": pj.job.model.path, "defence": pj.job.defence, "dataset": pj.job.data.source,
            "check": pj.job.check, "params": pj.job.params, "model_sha256": pj.model_sha256,
            "dataset_digest": pj.dataset_digest, "time_limit": pj.job.time_limit, "samples": pj.samples,
            "estimated_seconds": round(pj.cost.seconds, 3), "folder": f"jobs/{pj.job_id}",
        } for pj in prepared.jobs],
    }
    path = prepared.out / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def execute(
    prepared: Prepared,
    backend: Backend | None = None,
    *,
    yes: bool = True,
    threads: int | None = None,
    key_dir: str | Path | None = None,
    on_job: Callable[[dict[str, Any], int, int], None] | None = None,
) -> CampaignResult:
    """Run the jobs the store does not hold yet; ``on_job(outcome, done, total)`` after each ends.

    ``yes=False`` refuses (:class:`ConfirmationNeeded`) when the estimate is above the campaign's threshold.
    ``threads``: torch threads per job (default: the cores shared among the backend's workers).
    """
    backend = backend or InProcess()
    if not yes and prepared.needs_confirmation():
        raise ConfirmationNeeded(
            f"{prepared.estimate_text()}, above the campaign's confirm_above_seconds "
            f"({prepared.campaign.budget.confirm_above_seconds:g} s); pass --yes to run it")
    write_manifest(prepared)
    if threads is None and not isinstance(backend, InProcess):
        workers = getattr(backend, "workers", None) or os.cpu_count() or 1
        threads = max(1, (os.cpu_count() or 1) // workers)
    pending = prepared.pending
    payloads = [payload(pj, prepared, key_dir=key_dir, threads=threads) for pj in pending]
    t0 = time.perf_counter()
    outcomes: list[dict[str, Any]] = []
    by_id = {pj.job_id: pj for pj in prepared.jobs}
    for outcome in backend.run(payloads):
        outcomes.append(outcome)
        pj = by_id.get(outcome["job_id"])
        if pj is not None:
            pj.status = outcome["status"]
            if outcome.get("died"):  # its worker could not record it: the store says so, the report lists it
                _record_failure(prepared, pj, str(outcome["error"]), key_dir)
        if on_job is not None:
            on_job(outcome, len(outcomes), len(payloads))
    from aisec.campaigns.contest import run_campaign_contest

    contest = run_campaign_contest(prepared.campaign, prepared.out)  # submissions scored on the hidden split
    return CampaignResult(prepared=prepared, outcomes=outcomes, seconds=time.perf_counter() - t0,
                          backend=backend.name, contest=contest)


def _record_failure(prepared: Prepared, pj: PreparedJob, error: str, key_dir: str | Path | None) -> None:
    from aisec.store import EvidenceNotFound, open_store

    with open_store(prepared.store_url, key_dir=key_dir) as s:
        try:
            if s.run(pj.job_id).status in DONE:
                return
        except EvidenceNotFound:
            pass
        s.begin_run(pj.job_id, pj.job.plan(), out_dir=prepared.out / "jobs" / pj.job_id)
        s.finish_run(pj.job_id, status="failed", error=error[:2000])


def run_campaign(
    campaign: Campaign | str | Path,
    *,
    base_dir: str | Path | None = None,
    backend: Backend | None = None,
    store: str | None = None,
    yes: bool = True,
    threads: int | None = None,
    key_dir: str | Path | None = None,
    on_job: Callable[[dict[str, Any], int, int], None] | None = None,
) -> CampaignResult:
    """:func:`prepare` and :func:`execute` in one call; ``campaign`` may be a campaign file."""
    if not isinstance(campaign, Campaign):
        path = Path(campaign)
        campaign = Campaign.from_yaml(path)
        base_dir = base_dir if base_dir is not None else path.parent
    prepared = prepare(campaign, base_dir=base_dir if base_dir is not None else ".", store=store, key_dir=key_dir)
    return execute(prepared, backend, yes=yes, threads=threads, key_dir=key_dir, on_job=on_job)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["CampaignResult", "ConfirmationNeeded", "Prepared", "PreparedJob", "execute", "prepare",
           "run_campaign", "write_manifest"]
