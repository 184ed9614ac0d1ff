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


class ConvergenceError(KMCError, RuntimeError):
    """A relaxation or NEB did not reach its force tolerance within its step budget."""
