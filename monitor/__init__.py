"""ai-quality-monitor: notice that an AI feature is quietly getting worse, and act on it."""

__version__ = "0.1.0"
