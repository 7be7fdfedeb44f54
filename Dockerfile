# Chronicle CRM: one image for every role of the deployment (docker-compose.yml):
# `crm serve`, `crm relay`, `crm project`, and one-off commands (`crm verify`, `crm token`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY commands ./commands
COPY projections ./projections
COPY replay ./replay
COPY streaming ./streaming
COPY api ./api
# Installed as the README says, without the development extras.
RUN pip install . && rm -rf /src

# Never root: the data directory (DuckDB read models) belongs to this user.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/crm --create-home crm \
    && mkdir -p /var/lib/crm/data && chown crm:crm /var/lib/crm/data
USER crm
WORKDIR /var/lib/crm
ENV CRM_DATA_DIR=/var/lib/crm/data \
    CRM_HOST=0.0.0.0 \
    CRM_PORT=8000

EXPOSE 8000
ENTRYPOINT ["crm"]
CMD ["serve"]
