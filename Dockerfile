# rolloutlab serve in a container:
#   docker build -t rolloutlab:0.1.0 .
#   docker run --rm -p 127.0.0.1:8080:8080 -e ROLLOUTLAB_SERVE_TOKEN=... -v "$PWD/gitops:/specs:ro" \
#     rolloutlab:0.1.0 serve --url http://prometheus:9090 --spec /specs --host 0.0.0.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY rolloutlab ./rolloutlab
RUN pip install ".[serve]" && rm -rf /src

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/rolloutlab --create-home rolloutlab
USER 10001:10001
WORKDIR /var/lib/rolloutlab

EXPOSE 8080
ENTRYPOINT ["rolloutlab"]
CMD ["serve", "--help"]
