"""The project's own Rekognition emulator: a real HTTP endpoint for tests and the demo."""

from batch.emulator.faults import FAULTS
from batch.emulator.lifecycle import FATES, Plan, status_at
from batch.emulator.population import (
    CHALLENGE_TYPES,
    EVIDENCE_BUCKET,
    Population,
    challenge,
    planted_disagreements,
    write_input,
)
from batch.emulator.server import Emulator, serve
from batch.emulator.servicequotas import QUOTA_NAME
from batch.emulator.settings import EmulatorSettings
from batch.emulator.stats import OUTCOMES
from batch.emulator.thread import EmulatorThread

__all__ = [
    "CHALLENGE_TYPES",
    "EVIDENCE_BUCKET",
    "FATES",
    "FAULTS",
    "OUTCOMES",
    "QUOTA_NAME",
    "Emulator",
    "EmulatorSettings",
    "EmulatorThread",
    "Plan",
    "Population",
    "challenge",
    "planted_disagreements",
    "serve",
    "status_at",
    "write_input",
]
