# The image a loraflow work pool runs (deployments/pools/): the repository at /opt/loraflow, installed with the
# extras the pool's runs need. Deployments on a container pool keep entrypoints relative to the repository
# (flows/finetune.py:finetune) and no pull step, so the WORKDIR below must stay the repository root.
#
#   docker build -t loraflow:latest .                                    # every provider, CUDA torch (GPU pools)
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu -t loraflow:cpu .   # CPU only
#   docker build --build-arg EXTRAS=openai,kubernetes -t loraflow:openai .                         # one vendor
FROM python:3.11-slim

ARG EXTRAS=openai,azure_openai,together,vertex,bedrock,anthropic,local,gateway,kubernetes,docker,s3,gcs
# empty: torch from PyPI, whose Linux wheel is the CUDA build; a URL adds that index (the CPU build, another CUDA)
ARG TORCH_INDEX=

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LORAFLOW_HOME=/var/lib/loraflow \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    PREFECT_LOGGING_EXTRA_LOGGERS=loraflow

WORKDIR /opt/loraflow
# the dependencies first, so that a code change does not reinstall them
COPY pyproject.toml README.md ./
RUN mkdir -p cli flows tasks providers gateway emulator \
    && pip install --no-cache-dir ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} ".[${EXTRAS}]" \
    && pip uninstall -y loraflow
COPY cli cli
COPY flows flows
COPY tasks tasks
COPY providers providers
COPY gateway gateway
COPY emulator emulator
COPY deployments deployments
COPY examples examples
RUN pip install --no-cache-dir --no-deps -e . && mkdir -p "$LORAFLOW_HOME" runs

# a worker's job command (prefect flow-run execute) is given by the pool; this default makes the image a worker
CMD ["prefect", "worker", "start", "--pool", "loraflow-kubernetes", "--type", "kubernetes"]
