"""liveness-audit: nightly audit of Amazon Rekognition Face Liveness sessions."""

import os

# Arrow's process-wide allocator, read once when pyarrow loads: the Parquet reader's page
# and decompression buffers come from it whatever pool the caller passes. Under mimalloc
# (the default) a run streaming a 100,000-row report kept ~20 MB resident for 3 MB in use;
# the system's allocator gives it back (batch.store.lean). A value set by the
# user wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

__version__ = "0.1.0"
__all__ = ["__version__"]
