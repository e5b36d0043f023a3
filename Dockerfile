# One image for both roles: `bookmarks run` (web) and `bookmarks workers run` (worker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/bookmarks

COPY pyproject.toml README.md ./
COPY app ./app
COPY db ./db
COPY workers ./workers
RUN pip install . && useradd --system --uid 10001 bookmarks
USER bookmarks

EXPOSE 8000
CMD ["bookmarks", "run", "--host", "0.0.0.0", "--port", "8000"]
