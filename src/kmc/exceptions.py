"""Exceptions: every message is one sentence naming the problem and the fix."""


class KMCError(Exception):
    """Base class of every error kmc raises on purpose."""


class ConfigError(KMCError, ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


class StructureError(KMCError, ValueError):
    """A structure, CIF or site network cannot be built as asked."""


class NoEventsError(KMCError, RuntimeError):
    """No event has a non-zero rate: the system is frozen."""


class CheckpointError(KMCError, ValueError):
    """A checkpoint is unreadable or belongs to another configuration."""


class StructureWarning(UserWarning):
    """A structure builds, but probably not as meant (e.g. overlapping mobile sites)."""


class ResultWarning(UserWarning):
    """A result measured where it cannot be trusted as it stands (outside the diffusive regime,
    no error bars); the message says what to raise. :func:`kmc.run` emits one per entry of
    :attr:`kmc.runs.results.RunResult.warnings`."""


class CampaignError(KMCError, RuntimeError):
    """Runs of a campaign crashed (they are not stored and run again on the next attempt);
    ``report`` is the :class:`kmc.campaign.core.CampaignReport` of the attempt."""

    def __init__(self, message: str, report=None) -> None:
        super().__init__(message)
        self.report = report


class ConvergenceError(KMCError, RuntimeError):
    """A relaxation or NEB did not reach its force tolerance within its step budget."""
