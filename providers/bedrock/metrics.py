"""Bedrock's loss curves: the CSV files a customization job writes under its S3 output prefix.

Bedrock has no metrics API. A job writes, under `<output>/model-customization-job-<id>/`,
`training_artifacts/step_wise_training_metrics.csv` (step_number, epoch_number, training_loss, perplexity)
while it trains, and `validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv`
(step_number, epoch_number, validation_loss, perplexity) when a validation set was given.
Docs: https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-analyze.html
"""

from __future__ import annotations

import csv
import io
from typing import Any

from botocore.exceptions import ClientError

from providers.errors import UnexpectedProviderResponse

TRAINING_CSV = "training_artifacts/step_wise_training_metrics.csv"
VALIDATION_CSV = "validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv"
# the CSV column -> loraflow's metric name (the names the OpenAI and Together adapters report)
_COLUMNS = {"step_number": "step", "epoch_number": "epoch", "training_loss": "train_loss",
            "validation_loss": "valid_loss"}


def artifact_key(remote: dict[str, Any], artifact: str) -> tuple[str, str]:
    """(bucket, key) of one of the job's output artifacts, from a get_model_customization_job answer."""
    output = str((remote.get("outputDataConfig") or {}).get("s3Uri", ""))
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    job_id = str(remote.get("jobArn", "")).rsplit("/", 1)[-1]
    return bucket, f"{prefix.rstrip('/')}/model-customization-job-{job_id}/{artifact}".lstrip("/")


def read_rows(s3: Any, remote: dict[str, Any], artifact: str, provider: str) -> list[dict[str, float]]:
    """The artifact's rows with loraflow's metric names; empty when the file is not written yet.

    Call inside the adapter's error translation: S3 errors arrive as its ClientError."""
    bucket, key = artifact_key(remote, artifact)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except ClientError as exc:
        # told apart by its code: moto answers a missing key with a 400
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return []
        raise
    try:
        return [{_COLUMNS[k]: float(v) for k, v in row.items() if k in _COLUMNS and v not in (None, "")}
                for row in csv.DictReader(io.StringIO(body))]
    except ValueError as exc:
        raise UnexpectedProviderResponse(provider, f"s3://{bucket}/{key} is not numeric CSV: {exc}") from exc


def loss_curve(s3: Any, remote: dict[str, Any], provider: str) -> list[dict[str, float]]:
    """Training and validation rows merged by step, in step order."""
    by_step: dict[float, dict[str, float]] = {}
    for artifact in (TRAINING_CSV, VALIDATION_CSV):
        for row in read_rows(s3, remote, artifact, provider):
            if "step" not in row:
                raise UnexpectedProviderResponse(provider, f"{artifact}: a row without step_number")
            by_step.setdefault(row["step"], {}).update(row)
    return [by_step[step] for step in sorted(by_step)]


def final_losses(remote: dict[str, Any]) -> dict[str, float]:
    """The final train_loss and valid_loss a completed job reports in its own answer."""
    losses: dict[str, float] = {}
    training = (remote.get("trainingMetrics") or {}).get("trainingLoss")
    if training is not None:
        losses["train_loss"] = float(training)
    validation = [m.get("validationLoss") for m in remote.get("validationMetrics") or []]
    if validation and validation[-1] is not None:
        losses["valid_loss"] = float(validation[-1])
    return losses
