"""`loraflow migrate`: a pipeline's frozen data and eval set on a new base or provider, gated against the
current champion (and against the new base untuned); promoted to challenger only when it beats both."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.candidate import train_candidate
from flows.config import Pipeline
from flows.summaries import MigrationSummary
from providers.base import ChatModel
from providers.errors import ConfigError
from tasks.connection import open_provider
from tasks.lifecycle.migrate import ByProvider, frozen_data, migrated_provider, migrated_spec
from tasks.lifecycle.retrain import champion_ref, champion_version, compare_on_frozen_set, judge_retrain
from tasks.progress import report_to_prefect
from tasks.registry import Registry
from tasks.release.promotion import register_candidate
from tasks.training.serving import release_serving


@flow(name="migrate")
def migrate(pipeline: Pipeline, base_model: str, provider: str | None = None) -> MigrationSummary:
    report_to_prefect()
    old, target = pipeline.provider, pipeline.monitor.migrate_to
    options = target.options if target is not None and target.provider == provider else None
    cfg = migrated_provider(old, provider, options)
    spec, dropped = migrated_spec(pipeline.training, base_model, provider_changed=cfg.name != old.name)
    moved = pipeline.model_copy(update={"provider": cfg, "training": spec})
    with moved.new_run() as run:
        run.record("config", moved.model_dump(mode="json"))
        registry = Registry.open(pipeline.registry_url)
        champion = champion_version(registry, pipeline.name)
        frozen = frozen_data(registry, pipeline.name)
        run.record("migration", {"from": {"provider": old.name, "base_model": pipeline.training.base_model},
                                 "to": {"provider": cfg.name, "base_model": base_model},
                                 "dropped_knobs": dropped,
                                 "frozen_data": [str(p) for p in frozen] if frozen else None,
                                 "champion": champion.served_name if champion else None})
        data = pipeline.data if frozen is None else pipeline.data.model_copy(
            update={"path": run.fetch(frozen[0]), "eval_path": run.fetch(frozen[1])})
        new = open_provider(cfg)
        chat = ByProvider({cfg.name: new, **_champions_provider(pipeline, champion, cfg.name)})
        candidate = train_candidate(moved, new, spec, data, run, registry)
        against = {"vs-base": candidate.base} | ({"vs-champion": champion_ref(champion)} if champion else {})
        decisions = {label: compare_on_frozen_set(chat, ref, candidate.served, pipeline.eval, pipeline.gate,
                                                  run, label, target=cfg.target,
                                                  heldout=candidate.data.eval_path,
                                                  registry=registry)
                     for label, ref in against.items()}
        verdict = judge_retrain(decisions["vs-base"], decisions.get("vs-champion"))
        release_serving(new, candidate.trained, candidate.served, verdict.decision, run)
        version = register_candidate(pipeline.name, verdict.decision, candidate.base, candidate.served,
                                     candidate.data.sha256, run, registry,
                                     base_url=cfg.endpoint) if verdict.promote else None
        outcomes = {label: d.outcome for label, d in decisions.items()}
        run.record("migration", {**run.manifest()["migration"], "winner": verdict.winner,
                                 "promote": verdict.promote, "reason": verdict.reason, "version": version,
                                 "decisions": outcomes})
        title = f"# Migration to {cfg.name} {base_model}: {verdict.winner} wins"
        create_markdown_artifact(f"{title}\n\n{verdict.reason}\n", key="migration-summary",
                                 description=f"{verdict.winner} wins"[:500])
        return MigrationSummary(run.root, cfg.name, base_model, verdict.winner, verdict.reason, version,
                                outcomes)


def _champions_provider(pipeline: Pipeline, champion: object, new: str) -> dict[str, ChatModel]:
    """The old provider, opened so the champion can answer, when the champion lives there."""
    served_by = getattr(champion, "provider", None)
    if champion is None or served_by == new:
        return {}
    if served_by != pipeline.provider.name:
        raise ConfigError(f"the champion of {pipeline.name} is served by {served_by!r}, not by the "
                          f"pipeline's provider {pipeline.provider.name!r}: it cannot answer the comparison")
    return {served_by: open_provider(pipeline.provider)}
