FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY smartscheduler smartscheduler
COPY contractors contractors
COPY scheduling scheduling
COPY events events
COPY realtime realtime
COPY manage.py ./
RUN pip install --no-cache-dir . && python manage.py collectstatic --no-input -v 0
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "smartscheduler.asgi:application"]
