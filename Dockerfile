# The cohort-sync worker. Configure it with COHORT_SYNC_CONFIG and COHORT_SYNC_BROKER.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
RUN pip install --no-cache-dir .
COPY examples ./examples
ENV COHORT_SYNC_CONFIG=/app/examples/docker.toml
USER nobody
WORKDIR /tmp
EXPOSE 6066
ENTRYPOINT ["cohort-sync"]
CMD ["worker"]
