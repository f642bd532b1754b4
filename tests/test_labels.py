"""rolsync.labels: the words every page shows for the codes the product keeps."""
from __future__ import annotations

from rolsync import labels
from rolsync.rules import default_rules
from rolsync.rules.store import _flatten


def test_a_class_name_never_reaches_a_person():
    line = "rolsync.mail.errors.NotImap: The port answered, but not as a mail server."
    assert labels.error_sentence(line) == "The port answered, but not as a mail server."
    foreign = "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection to 192.0.2.5 failed"
    assert labels.error_sentence(foreign) == ("The import stopped with an internal error; the worker's log has "
                                              "the details.")
    assert labels.error_sentence("ValueError: bad").startswith("The import stopped")
    assert labels.error_sentence("The mail server did not answer in time.") == "The mail server did not answer in time."
    assert labels.error_sentence(None) == ""


def test_every_rule_setting_and_built_in_rule_has_words():
    for key in _flatten({k: v for k, v in default_rules().items() if k != "custom_rules"}):
        assert key in labels.SETTING_LABELS, key
    assert labels.rule_label("one_candidate") == "the address belongs to one candidate"
    assert labels.rule_label("custom: CVs from the job board") == "custom rule \u201cCVs from the job board\u201d"
    assert labels.setting_value("images.mode", "exclude_all") == "leave out every image"
    assert labels.setting_value("attachments.max_size", 0) == "no limit"
    assert labels.setting_value("attachments.max_size", 1572864) == "1.5 MB"
    assert labels.setting_value("images.min_size", 10240) == "10 KB"
    assert labels.setting_value("automatic_mail.skip", True) == "on"


def test_an_unknown_code_still_reads_as_words():
    assert labels.reason_label("some_new_reason") == "some new reason"
    assert labels.warning_kind_label("some_new_kind") == "Some new kind"
