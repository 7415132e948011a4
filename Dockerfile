# The project image: every service of docker-compose.yml runs it, each with its own command
# (`smart-shelf container serve <component>`, `smart-shelf container init <step>`, ...).
# The project is installed by the same steps as a local stack: the ./smart-shelf launcher
# installs the pinned Python packages into .venv, then `smart-shelf setup` installs Postgres,
# Redis and Chromium from Debian's packages and resolves the JVM jars with Maven. Built by the
# classic builder as well as BuildKit: no BuildKit-only syntax.
#
#   docker build -t smart-shelf .                                  (or ./smart-shelf docker up)
#   docker build --build-arg BASE_IMAGE=my/debian:bookworm -t smart-shelf .
#
# Extra CA certificates (a TLS-intercepting proxy's, a company's): put them as *.crt files into
# docker/certs/ before building (`./smart-shelf docker up` copies the host's own there); apt,
# pip, Maven and the platform trust them.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The certificates first, so the JDK's trust store (ca-certificates-java) holds them too.
COPY docker/certs/ /tmp/extra-certs/
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends ca-certificates \
    && mkdir -p /usr/local/share/ca-certificates/smart-shelf \
    && find /tmp/extra-certs -name '*.crt' -exec cp {} /usr/local/share/ca-certificates/smart-shelf/ \; \
    && update-ca-certificates \
    && apt-get install -y -q --no-install-recommends \
       python3 python3-venv openjdk-17-jdk-headless maven curl \
    && rm -rf /var/lib/apt/lists/* /tmp/extra-certs

WORKDIR /opt/smart-shelf
# The Python packages in a layer of their own: they change only with pyproject.toml.
# The packages' folders are made empty first: the editable install maps each to its folder,
# which the sources fill later; so is README.md, the package's description, so that editing
# it does not install every package again.
COPY pyproject.toml smart-shelf ./
RUN for package in smart_shelf_platform streaming producers dashboard; do \
      mkdir -p "$package" && touch "$package/__init__.py"; done \
    && touch README.md \
    && SMART_SHELF_INSTALL_ONLY=1 ./smart-shelf
# Debian packages and JVM jars: they change with the setup code and jvm/.
COPY jvm/ jvm/
COPY smart_shelf_platform/ smart_shelf_platform/
RUN ./smart-shelf setup \
    && rm -rf /root/.m2 /root/.cache jvm/connect-transforms/target /var/lib/apt/lists/*
COPY . .

ENV PATH=/opt/smart-shelf/.venv/bin:$PATH \
    SMART_SHELF_HOME=/var/lib/smart-shelf
ENTRYPOINT ["smart-shelf"]
CMD ["--help"]
