"""liveness-audit: nightly audit of Amazon Rekognition Face Liveness sessions."""

__version__ = "0.1.0"
__all__ = ["__version__"]
