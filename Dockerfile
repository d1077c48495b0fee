# ims-sync as a container image: the CLI and its built-in mappings, nothing else.
#   docker build -t ims-sync .          (or: podman build -t ims-sync .)
#   docker run --rm -v ims-sync-state:/var/lib/ims-sync -v /srv/sis-export:/export:ro \
#     -e IMS_ES_USERNAME -e IMS_ES_PASSWORD ims-sync run /export --mapping oneroster \
#     --endpoint https://<your-site>/PersonManagementService.svc
# The state directory is a volume: it must outlive the container (see docs/scheduling.md).
FROM python:3.12-slim

# An unprivileged user owns the state; the image runs nothing as root.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ims-sync --create-home ims-sync

COPY pyproject.toml constraints.txt README.md /src/
COPY sync /src/sync
COPY mappings /src/mappings
RUN pip install --no-cache-dir --disable-pip-version-check -c /src/constraints.txt /src \
    && rm -rf /src \
    && ims-sync --version

USER ims-sync
WORKDIR /var/lib/ims-sync
ENV IMS_SYNC_STATE=/var/lib/ims-sync \
    IMS_SYNC_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/ims-sync"]
ENTRYPOINT ["ims-sync"]
CMD ["--help"]
