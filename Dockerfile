# The fraudstream image used by docker-compose.yml (streamer, trainer, topic creation).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fraudstream fraudstream
COPY features features
COPY state state
COPY models models
COPY training training
COPY streamer streamer
COPY bankbus bankbus
COPY backtest backtest
COPY bench bench
COPY deploy deploy
RUN pip install --no-cache-dir . && useradd --system --uid 10001 fraud \
    && NUMBA_CACHE_DIR=/app/.numba python -m features.jit && chmod -R a+rX /app/.numba
ENV NUMBA_CACHE_DIR=/app/.numba
USER fraud
ENTRYPOINT []
CMD ["fraudstream", "--help"]
