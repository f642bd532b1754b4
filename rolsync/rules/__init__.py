"""The import rules: their data format, the durable_rules engine, and their storage."""
from rolsync.rules.definition import DEFAULT_RULES, RuleSetInvalid, default_rules, validate
from rolsync.rules.engine import (
    AddressAction,
    AddressDecision,
    Attach,
    AttachmentDecision,
    CompiledRules,
)

__all__ = [
    "DEFAULT_RULES",
    "AddressAction",
    "AddressDecision",
    "Attach",
    "AttachmentDecision",
    "CompiledRules",
    "RuleSetInvalid",
    "default_rules",
    "validate",
]
