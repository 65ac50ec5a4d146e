# Airflow image with airflow-provider-cronium installed, used by docker-compose.airflow.yml.
#
#   docker build -f docker/airflow.Dockerfile -t airflow-provider-cronium:local .
#   docker build -f docker/airflow.Dockerfile --build-arg AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.12 .
#
# The build context is the repository root. Follows the official image's conventions
# (https://airflow.apache.org/docs/docker-stack/build.html): Python packages are installed as the
# "airflow" user, with apache-airflow pinned to the image's own version so pip never up- or downgrades it.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

USER airflow

COPY --chown=airflow:0 pyproject.toml README.md /tmp/cronium-src/
COPY --chown=airflow:0 cronium_provider/ /tmp/cronium-src/cronium_provider/
COPY --chown=airflow:0 runtime_helpers/ /tmp/cronium-src/runtime_helpers/

# The compose stack needs the Celery executor, the PostgreSQL driver and the FAB auth manager: the official
# image ships all three; naming them here makes sure they are present when AIRFLOW_IMAGE is a slim image.
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        apache-airflow-providers-celery \
        apache-airflow-providers-fab \
        apache-airflow-providers-postgres \
        /tmp/cronium-src \
    && rm -rf /tmp/cronium-src

# The template DAG file: builds one DAG per Cronium record found in $CRONIUM_RECORDS_DIR.
COPY --chown=airflow:0 dags_templates/cronium_dags.py /opt/airflow/dags/cronium_dags.py
