"""Rebuild tests/mail/corpus/ from the public test suites it was taken from, and write each message's expected result.

Run from the checkout: `python tests/mail/corpus/collect.py MIRROR...` with
git mirrors of the sources below (each `owner+name/repo`); without mirrors it
only rewrites the expected results (`--expected`) from the careful path, for a
person to review in the diff. Each source keeps its licence beside its files.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

SOURCES = {
    # folder: (repository, commit, licence file, paths of the messages in the repository)
    "enmime": ("jhillyerd/enmime", "0d919cc223e9cb6c2d45d6c653e7a64156006351", "LICENSE",
               ("testdata/low-quality/", "testdata/mail/", "testdata/parts/", "dsn/testdata/")),
    "mail-parser": ("SpamScope/mail-parser", "01c177fecddd9db1def23ba509ab31b12ab4fbc5", "LICENSE.txt",
                    ("tests/mails/",)),
    "mailparse": ("staktrace/mailparse", "0755eb0cd8fe1854c54d93c0e74965af46fd933d", "LICENSE",
                  ("tests/files/nested.eml", "tests/files/test_email_01.txt")),
}
MAX_BYTES = 400_000  # a modest corpus: the few messages over this are left out
CPYTHON_DATA = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "test" \
    / "test_email" / "data"


def expected(raw: bytes) -> dict:
    """What a message must parse to: the facts the differential test compares."""
    from rolsync.mail.parse import MessageUnreadable, parse_message

    try:
        parsed = parse_message(raw, careful=True)
    except MessageUnreadable as exc:
        return {"unreadable": exc.reason}
    return {
        "from": parsed.from_addr, "reply_to": parsed.reply_to, "to": parsed.to, "cc": parsed.cc,
        "subject": parsed.subject, "date": parsed.date.isoformat() if parsed.date else None,
        "text": " ".join(parsed.text.split()),
        "documents": [{"filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256}
                      for a in parsed.attachments],
    }


def write_expected() -> None:
    for eml in sorted(HERE.glob("*/*.eml")):
        eml.with_suffix(".json").write_text(json.dumps(expected(eml.read_bytes()), indent=1, ensure_ascii=False)
                                            + "\n")


def collect(mirrors: list[Path]) -> None:
    for folder, (repo, commit, licence, paths) in SOURCES.items():
        mirror = next(m for m in mirrors if m.parent.name == repo.replace("/", "+"))
        names = subprocess.run(["git", "-C", str(mirror), "ls-tree", "-r", "-l", commit],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        target = HERE / folder
        target.mkdir(exist_ok=True)
        taken = []
        for line in names:
            meta, path = line.split("\t", 1)
            size = int(meta.split()[3])
            if not path.startswith(paths) or size > MAX_BYTES or path.endswith((".golden", ".go", ".pdf")):
                continue
            data = subprocess.run(["git", "-C", str(mirror), "show", f"{commit}:{path}"], capture_output=True,
                                  check=True).stdout
            name = path.replace("/", "--").rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] \
                else path.replace("/", "--")
            (target / f"{name}.eml").write_bytes(data)
            taken.append(path)
        (target / "LICENSE").write_bytes(subprocess.run(["git", "-C", str(mirror), "show", f"{commit}:{licence}"],
                                                        capture_output=True, check=True).stdout)
        (target / "SOURCE.md").write_text(
            f"# Source\n\nhttps://github.com/{repo} at commit {commit}, under the licence in LICENSE "
            f"(copied from the repository's `{licence}`).\n\nFile names are the repository paths with `/` "
            f"written `--`. Messages:\n\n" + "".join(f"- `{path}`\n" for path in taken))
    target = HERE / "cpython"
    target.mkdir(exist_ok=True)
    taken = []
    for path in sorted(CPYTHON_DATA.glob("msg_*.txt")):
        (target / f"{path.stem}.eml").write_bytes(path.read_bytes())
        taken.append(path.name)
    (target / "SOURCE.md").write_text(
        "# Source\n\nCPython's `Lib/test/test_email/data/` (https://github.com/python/cpython), as shipped with "
        f"Python {sys.version_info[0]}.{sys.version_info[1]}, under the Python Software Foundation License "
        "Version 2 (https://docs.python.org/3/license.html). Messages:\n\n" + "".join(f"- `{n}`\n" for n in taken))


if __name__ == "__main__":
    if sys.argv[1:] != ["--expected"]:
        collect([Path(arg) for arg in sys.argv[1:]])
    write_expected()
