"""A report's command as a person types it into a shell."""

from __future__ import annotations

import shlex

# What a shell still reads inside double quotes: a word holding one of these keeps shlex's quoting.
EXPANDED_IN_DOUBLE_QUOTES = '"$`\\!'


def quoted(word: str) -> str:
    """``word`` quoted for a shell: shlex's quoting, except that a word with an apostrophe goes in
    double quotes (``"the target's pixels"``, not ``'the target'"'"'s pixels'``)."""
    if "'" in word and not any(char in word for char in EXPANDED_IN_DOUBLE_QUOTES):
        return f'"{word}"'
    return shlex.quote(word)


def typed(words: list[str]) -> str:
    """``words`` (a command's arguments) as one shell line."""
    return " ".join(quoted(word) for word in words)


def bench_command(script: str, words: list[str]) -> str:
    """The line that runs ``bench/<script>`` with ``words`` from the repository root, in
    backquotes (a report's first line)."""
    return "`" + " ".join([".venv/bin/python", f"bench/{script}", *map(quoted, words)]) + "`"
