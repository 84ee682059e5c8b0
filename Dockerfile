# genads serving image (CPU). Build from a clone:  docker build -t genads .
# Serve a bundle (read-only) with the deployment's state (ledger, keys, token secret, served log) on a named volume,
# so a new bundle (genads export --keep-state, or a new image) finds the same ledger and keys:
#   docker run -p 8000:8000 -v $PWD/runs/demo/serve:/bundle:ro -v genads-state:/bundle/state \
#       genads serve /bundle --host 0.0.0.0
# No VOLUME instruction: an image-declared volume at /bundle/state would silently shadow a bundle's own state/.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1

# CJK glyphs for Chinese banner titles
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# torch first, from the CPU index and pinned: otherwise pip resolves `torch` to a CUDA build (~15 nvidia wheels)
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md LICENSE ./
COPY configs ./configs
COPY data/demo ./data/demo
COPY src ./src
RUN pip install . && rm -rf /src

# the state volume's mount point, owned by the service user (a new named volume takes this ownership)
RUN useradd --create-home --uid 10001 genads && mkdir -p /bundle/state && chown genads /bundle/state \
    && chmod 0700 /bundle/state
USER genads
WORKDIR /home/genads
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
ENTRYPOINT ["genads"]
CMD ["--help"]
