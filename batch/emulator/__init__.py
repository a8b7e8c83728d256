"""The project's own Rekognition emulator: a real HTTP endpoint for tests and the demo."""

from batch.emulator.population import EVIDENCE_BUCKET, Population, write_input
from batch.emulator.server import (
    FAULTS,
    OUTCOMES,
    Emulator,
    EmulatorSettings,
    EmulatorThread,
    serve,
)

__all__ = [
    "EVIDENCE_BUCKET",
    "FAULTS",
    "OUTCOMES",
    "Emulator",
    "EmulatorSettings",
    "EmulatorThread",
    "Population",
    "serve",
    "write_input",
]
