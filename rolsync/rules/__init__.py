"""The import rules: their data format, the durable_rules engine, their storage, and deciding on a message."""
from rolsync.rules.decide import Decision, NewWarning, addresses_to_match, decide, sort_attachments
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
    "Decision",
    "NewWarning",
    "RuleSetInvalid",
    "addresses_to_match",
    "decide",
    "default_rules",
    "sort_attachments",
    "validate",
]
