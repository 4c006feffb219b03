#!/usr/bin/env bash
# Installs the Kafka clients the end-to-end test uses (tests/tests/kafka_e2e.rs),
# when missing: confluent-kafka (librdkafka) from PyPI and kcat from Debian.
# Idempotent: does nothing when both are there. The test runs the same steps
# itself (baton_tests::refbroker::ensure_kafka_clients).
set -euo pipefail
if python3 -c 'import confluent_kafka' 2>/dev/null; then
  echo "confluent-kafka: present ($(python3 -c 'import confluent_kafka as c; print(c.__version__, "librdkafka", c.libversion()[0])'))"
else
  python3 -m pip install --quiet confluent-kafka
fi
if command -v kcat >/dev/null 2>&1; then
  echo "kcat: present"
else
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat
fi
